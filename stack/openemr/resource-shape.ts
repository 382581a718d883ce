/**
 * Turns a resource as found in a Bulk FHIR / transaction-bundle export into what OpenEMR would serve
 * after importing it: `urn:uuid:` references become `Type/<id>`, and meta carries versionId "1" and a
 * lastUpdated in the server's local offset. Source key order is kept (meta goes right after id when
 * the source has none), so served JSON looks like the source.
 */
export {
  DIRECTORY_TYPES,
  type DirectoryType,
  isDirectoryType,
  isSupportedType,
  PATIENT_SCOPED_TYPES,
  SUPPORTED_TYPES,
  type SupportedType,
} from './standin-types';

/**
 * Removes references OpenEMR could never serve: a conditional one (`Practitioner?identifier=…`, as
 * Synthea writes for practitioners, locations and organizations) names no row. OpenEMR serves only
 * `Type/uuid` of rows it holds (FhirEncounterService.php builds them with createRelativeReference).
 * Those the loaded directory links to a row were rewritten before (linkConditionalReferences); the
 * rest go, as a NULL provider_uuid/facility_uuid leaves them out of OpenEMR's Encounter.
 */
export function dropConditionalReferences(node: unknown): unknown {
  if (Array.isArray(node)) {
    const out = node.map(dropConditionalReferences).filter((v) => v !== undefined);
    return out.length ? out : undefined;
  }
  if (node === null || typeof node !== 'object') return node;
  const obj = node as Record<string, unknown>;
  if (typeof obj.reference === 'string' && obj.reference.includes('?')) return undefined;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    const w = dropConditionalReferences(v);
    if (w !== undefined) out[k] = w;
  }
  return Object.keys(out).length ? out : undefined;
}

/** Rewrites conditional references the directory's links.json names (`Type/uuid` of a served row), in place. */
export function linkConditionalReferences(node: unknown, links: ReadonlyMap<string, string>): void {
  if (links.size === 0 || node === null || typeof node !== 'object') return;
  if (Array.isArray(node)) {
    for (const item of node) linkConditionalReferences(item, links);
    return;
  }
  const obj = node as Record<string, unknown>;
  if (typeof obj.reference === 'string' && obj.reference.includes('?')) {
    const linked = links.get(obj.reference);
    if (linked) obj.reference = linked;
  }
  for (const key in obj) linkConditionalReferences(obj[key], links);
}

/** A FHIR resource as plain JSON; the stand-in never needs more typing than this. */
export interface FhirResource {
  resourceType: string;
  id?: string;
  meta?: Record<string, unknown>;
  [key: string]: unknown;
}

/** ramsey/uuid's shape check, which is all OpenEMR asks of an id (synthea ids have odd version nibbles). */
export const UUID_SHAPE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** Where the target of a reference cannot be looked up, the field it sits in says what it points at. */
const TYPE_BY_FIELD: Record<string, string> = {
  subject: 'Patient',
  patient: 'Patient',
  individual: 'Patient',
  encounter: 'Encounter',
  context: 'Encounter',
  performer: 'Practitioner',
  generalPractitioner: 'Practitioner',
  requester: 'Practitioner',
  author: 'Practitioner',
  managingOrganization: 'Organization',
  organization: 'Organization',
  serviceProvider: 'Organization',
  location: 'Location',
  hasMember: 'Observation',
  derivedFrom: 'Observation',
  specimen: 'Specimen',
  basedOn: 'ServiceRequest',
  device: 'Device',
};

/** Answers "what type has this id?" for ids the server already holds. */
export type KnownIdLookup = (id: string) => string | undefined;

/** Rewrites every `{reference: "urn:uuid:<id>"}` in place; unknown targets in unknown fields stay as they are. */
export function rewriteUrnReferences(node: unknown, knownType: KnownIdLookup, field = ''): void {
  if (Array.isArray(node)) {
    for (const item of node) rewriteUrnReferences(item, knownType, field);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const obj = node as Record<string, unknown>;
  const ref = obj.reference;
  if (typeof ref === 'string' && ref.startsWith('urn:uuid:')) {
    const id = ref.slice('urn:uuid:'.length);
    const type = knownType(id) ?? TYPE_BY_FIELD[field];
    if (type) obj.reference = `${type}/${id}`;
  }
  // for-in rather than Object.entries: this runs for every resource of a million-line load.
  for (const key in obj) {
    const value = obj[key];
    if (value !== null && typeof value === 'object') rewriteUrnReferences(value, knownType, key);
  }
}

/** Returns a copy with id and OpenEMR's meta (versionId "1", local lastUpdated text), keeping key order. */
export function withServerMeta(resource: FhirResource, id: string, lastUpdated: string): FhirResource {
  const stamped = { versionId: '1', lastUpdated };
  const sourceMeta = resource.meta && typeof resource.meta === 'object' ? resource.meta : undefined;
  const meta: Record<string, unknown> = { ...stamped };
  if (sourceMeta) {
    for (const [k, v] of Object.entries(sourceMeta)) if (k !== 'versionId' && k !== 'lastUpdated') meta[k] = v;
  }
  const out: FhirResource = { resourceType: resource.resourceType };
  let placedMeta = false;
  for (const [key, value] of Object.entries(resource)) {
    if (key === 'meta') {
      out.meta = meta;
      placedMeta = true;
    } else if (key === 'id') {
      out.id = id;
      if (!sourceMeta) {
        out.meta = meta;
        placedMeta = true;
      }
    } else {
      out[key] = value;
    }
  }
  if (out.id === undefined) out.id = id;
  if (!placedMeta) out.meta = meta;
  return out;
}

/** `system|code` tokens for every coding of one or more CodeableConcepts. */
export function codingTokens(concepts: unknown, intern: (s: string) => string): string[] {
  const list = Array.isArray(concepts) ? concepts : concepts ? [concepts] : [];
  const tokens: string[] = [];
  for (const concept of list) {
    const codings = (concept as { coding?: unknown })?.coding;
    if (!Array.isArray(codings)) continue;
    for (const coding of codings) {
      const c = coding as { system?: unknown; code?: unknown };
      if (typeof c?.code !== 'string') continue;
      tokens.push(intern(`${typeof c.system === 'string' ? c.system : ''}|${c.code}`));
    }
  }
  return tokens;
}
