import type { OperationOutcome } from '@medplum/fhirtypes';

export type IssueCode =
  | 'invalid'
  | 'not-found'
  | 'exception'
  | 'transient'
  | 'throttled'
  | 'timeout'
  | 'security'
  | 'login'
  | 'processing'
  | 'conflict'
  | 'not-supported'
  | 'too-long'
  | 'too-costly';

export function operationOutcome(
  code: IssueCode,
  diagnostics: string,
  severity: 'error' | 'warning' | 'information' = 'error',
): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics }] };
}
