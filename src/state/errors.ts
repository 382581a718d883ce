import { ConfigError } from '../config/load';
import { scrubText, UpstreamError } from '../http/errors';
import { LeaseLostError } from './lease';

/** Dead letters of this run could not be stored: the window stays open so the failures are seen again. */
export class DeadLetterStorageError extends Error {
  constructor(count: number) {
    super(`${count} dead letter(s) could not be stored; the watermark was not advanced.`);
    this.name = 'DeadLetterStorageError';
  }
}

/**
 * HTTP answer for the failures particular to runs that close windows (the shared errorResponse
 * handles upstream and configuration errors): a lost lease is a conflict, dead letters or state
 * that storage could not take make the run retryable (503). Undefined for anything else.
 */
export function classifyRunError(error: unknown): { status: number; code: 'conflict' | 'transient'; message: string } | undefined {
  if (error instanceof LeaseLostError) return { status: 409, code: 'conflict', message: error.message };
  if (error instanceof DeadLetterStorageError) return { status: 503, code: 'transient', message: `${error.message} Try again later.` };
  const e = error as { name?: string; statusCode?: number; code?: string } | undefined;
  if (e?.name === 'RestError') {
    return {
      status: 503,
      code: 'transient',
      message: `Azure Storage (watermarks, lease, dead letters) is unavailable${e.statusCode ? ` (${e.statusCode})` : e.code ? ` (${e.code})` : ''}; nothing was advanced. Try again later.`,
    };
  }
  return undefined;
}

/**
 * One line saying why a run failed, for logs and the CLI: the run's own reason, a setting, the
 * upstream side and cause, or the error's name with its message scrubbed (never a stack trace, a
 * token or resource content).
 */
export function runFailureMessage(error: unknown): string {
  const known = classifyRunError(error);
  if (known) return known.message;
  if (error instanceof ConfigError || error instanceof UpstreamError) return error.message;
  return `${(error as Error)?.name ?? 'Error'}: ${scrubText(String((error as Error)?.message ?? error))}`;
}

/**
 * What kind of failure stopped a run, in a few stable words for run events, the workbook and the
 * run status: which side, and whether it was down (retry later) or refusing (fix something).
 */
export type FailureClass =
  | 'lease-lost'
  | 'storage'
  | 'openemr-unavailable'
  | 'openemr-refused'
  | 'openemr-auth'
  | 'ahds-unavailable'
  | 'ahds-refused'
  | 'ahds-auth'
  | 'configuration'
  | 'internal';

export function failureClassOf(error: unknown): FailureClass {
  if (error instanceof LeaseLostError) return 'lease-lost';
  if (error instanceof DeadLetterStorageError || (error as { name?: string } | undefined)?.name === 'RestError') return 'storage';
  if (error instanceof ConfigError) return 'configuration';
  if (error instanceof UpstreamError) {
    if (error.isOutage) return `${error.side}-unavailable`;
    if (error.code === 'AuthenticationFailed' || error.code === 'Forbidden') return `${error.side}-auth`;
    return `${error.side}-refused`;
  }
  return 'internal';
}
