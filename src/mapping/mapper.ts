import type { CodeableConcept, Coding, Meta, Observation, Patient, Quantity } from '@medplum/fhirtypes';
import type { SyncedResource } from '../fhir/types';
import { CHECKED_SYSTEMS, isStandardSystem, US_SSN, US_SSN_OID, V2_0203 } from './codes';
import { loadConceptMaps, type ConceptMapIndex, type TargetCoding } from './conceptmaps';
import type { MapOutcome, MappingOptions, ResourceMapper, UnmappedCoding } from './contract';
import { mapAttachments } from './attachments';
import { Deidentifier } from './deid';
import { deidentifyResource } from './deid-resource';
import { normaliseQuantity } from './units';
import { validationFailure, withSafeNarrative } from './validate';
import { normaliseDirectoryResource } from './directory';
import { isValidFhirId } from '../fhir/ids';
import { parseReference } from '../fhir/references';
import { RESOURCE_TYPES, type ResourceTypeSpec } from '../sync/resource-types';
import { hasVitalSignsCategory, isValidUsCoreVitalSign, US_CORE_VITAL_SIGNS, vitalSignCode, vitalSignsCategory } from './vitals';

type Json = Record<string, unknown>;

const DEFAULT_CARRIED = ['Patient', 'Observation'];
/** The type a `urn:uuid:` reference (transaction-bundle form) has when Reference.type does not say. */
const DEFAULT_REF_TYPE: Record<string, string> = {
  subject: 'Patient',
  patient: 'Patient',
  encounter: 'Encounter',
  hasMember: 'Observation',
  derivedFrom: 'Observation',
  specimen: 'Specimen',
  device: 'Device',
  managingOrganization: 'Organization',
};

/** Bundle-entry leftovers that are not resource content. */
const ROOT_LEFTOVERS = new Set(['fullUrl', 'search', 'request', 'response']);

const US_CORE_PATIENT = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient';

/**
 * Builds the mapper. Reads and indexes every ConceptMap once (shipped maps, then the user's files);
 * throws with the file and rule when a map is unreadable or would add an invalid LOINC or SNOMED CT
 * code, and when de-identification is on without a key.
 */
export function createResourceMapper(options: MappingOptions, internal: { shippedMapsDir?: string } = {}): ResourceMapper {
  const maps = loadConceptMaps(options.conceptMapFiles, internal.shippedMapsDir);
  return new Mapper(options, maps);
}

class Mapper implements ResourceMapper {
  private readonly deid?: Deidentifier;
  private readonly dropSystems: Set<string>;
  private readonly dropSsnType: boolean;
  private readonly carried: Set<string>;

  constructor(
    private readonly options: MappingOptions,
    private readonly maps: ConceptMapIndex,
  ) {
    if (options.deid.enabled) {
      if (!options.deid.key) throw new Error('De-identification is on but no key is set (DEID_KEY)');
      this.deid = new Deidentifier(options.deid.key);
    }
    this.dropSystems = new Set(options.dropIdentifierSystems);
    this.carried = new Set(options.carriedTypes ?? DEFAULT_CARRIED);
    // The SSN namespace has two spellings; dropping one drops both, and identifiers typed SS
    // (v2-0203) go too even when they carry no system or another one.
    this.dropSsnType = this.dropSystems.has(US_SSN) || this.dropSystems.has(US_SSN_OID);
    if (this.dropSsnType) {
      this.dropSystems.add(US_SSN);
      this.dropSystems.add(US_SSN_OID);
    }
  }

  targetId(resourceType: string, sourceId: string): string {
    return this.deid ? this.deid.pseudonymId(resourceType, sourceId) : sourceId;
  }

  map(resource: SyncedResource): MapOutcome {
    const type = (resource as { resourceType?: unknown } | null)?.resourceType;
    const spec = typeof type === 'string' ? RESOURCE_TYPES.find((t) => t.type === type) : undefined;
    if (!spec) {
      return { ok: false, reason: `Unsupported resource type: only ${RESOURCE_TYPES.map((t) => t.type).join(', ')} are mapped` };
    }
    if (!isValidFhirId(resource.id)) {
      return { ok: false, reason: `FHIR validation failed: ${type}.id: missing or invalid id` };
    }
    try {
      const unmapped: UnmappedCoding[] = [];
      const mapped =
        type === 'Patient'
          ? this.mapPatient(resource as Patient)
          : type === 'Observation'
            ? this.mapObservation(resource as Observation, unmapped)
            : this.mapClinical(resource, spec, unmapped);
      // De-identification last, over the whole mapped resource, by FHIR data type (deid-resource.ts).
      const out = withSafeNarrative(this.deid ? (deidentifyResource(mapped as never, this.deid, spec.mapping.deidDrop) as never) : mapped);
      const failure = validationFailure(out, this.options.validation);
      if (failure) return { ok: false, reason: failure };
      return { ok: true, resource: out, unmapped };
    } catch (err) {
      // Never the message: it could quote resource content.
      return { ok: false, reason: `Mapping failed: internal error (${(err as Error)?.name ?? 'Error'})` };
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Patient

  private mapPatient(src: Patient): Patient {
    const body = this.walkRoot(src);
    if (Array.isArray(body.link)) {
      // A link whose `other` was dropped (uncarried RelatedPerson) is no link.
      const links = (body.link as Json[]).filter((l) => l.other !== undefined);
      if (links.length) body.link = links;
      else delete body.link;
    }
    const profiles = this.deid ? [] : patientProfiles(src, body);
    return this.finish(src, body, profiles) as Patient;
  }

  // ---------------------------------------------------------------------------------------------
  // Observation

  private mapObservation(src: Observation, unmapped: UnmappedCoding[]): Observation {
    const body = this.walkRoot(src);

    const report = reporter(unmapped);
    if (body.code) body.code = this.mapConcept(body.code as CodeableConcept, report);
    if (body.valueCodeableConcept) body.valueCodeableConcept = this.mapConcept(body.valueCodeableConcept as CodeableConcept, report);
    mapQuantities(body);
    if (Array.isArray(body.component)) {
      body.component = (body.component as Json[]).map((comp) => {
        const c: Json = { ...comp };
        if (c.code) c.code = this.mapConcept(c.code as CodeableConcept, report);
        if (c.valueCodeableConcept) c.valueCodeableConcept = this.mapConcept(c.valueCodeableConcept as CodeableConcept, report);
        mapQuantities(c);
        return c;
      });
    }

    const obs = body as unknown as Observation;
    if (vitalSignCode(obs.code) !== undefined && !hasVitalSignsCategory(obs)) {
      body.category = [...(obs.category ?? []), vitalSignsCategory()];
    }
    const profiles = isValidUsCoreVitalSign(obs) ? [US_CORE_VITAL_SIGNS] : [];
    return this.finish(src, body, profiles) as Observation;
  }

  // ---------------------------------------------------------------------------------------------
  // Encounter, Condition (and any type of the table): the table's concepts through the ConceptMaps.

  private mapClinical(src: SyncedResource, spec: ResourceTypeSpec, unmapped: UnmappedCoding[]): SyncedResource {
    const body = this.walkRoot(src);
    normaliseDirectoryResource(spec.type, body);
    const report = reporter(unmapped);
    for (const element of spec.mapping.concepts) {
      const value = body[element];
      if (Array.isArray(value)) body[element] = value.map((cc) => this.mapConcept(cc as CodeableConcept, report));
      else if (value && typeof value === 'object') body[element] = this.mapConcept(value as CodeableConcept, report);
    }
    mapAttachments(src.resourceType, body, { deid: this.deid !== undefined });
    return this.finish(src, body, []);
  }

  /** Maps each coding, adds the maps' targets, and reports the concept when nothing standard is left. */
  private mapConcept(cc: CodeableConcept, report: (c: UnmappedCoding) => void): CodeableConcept {
    if (!cc.coding) return cc;
    const codings: Coding[] = [];
    const added: TargetCoding[] = [];
    for (const c of cc.coding) {
      const r = this.mapCoding(c);
      codings.push(r.coding);
      for (const t of r.targets) added.push(t);
    }
    for (const t of added) {
      if (!codings.some((c) => c.system === t.system && c.code === t.code)) codings.push({ ...t });
    }
    if (!codings.some((c) => c.system !== undefined && c.code !== undefined && isStandardSystem(c.system))) {
      for (const c of codings) {
        if (c.system !== undefined && c.code !== undefined) {
          report(c.display !== undefined ? { system: c.system, code: c.code, display: c.display } : { system: c.system, code: c.code });
        }
      }
    }
    return { ...cc, coding: codings };
  }

  /**
   * One coding: a code labelled with a checked system (LOINC, SNOMED CT) that a map lists under
   * another source system, or that fails the system's check, is re-labelled (to the map's source
   * system, else the local code system); map targets for the coding's real system are returned.
   */
  private mapCoding(c: Coding): { coding: Coding; targets: TargetCoding[] } {
    const { system, code } = c;
    if (system === undefined || code === undefined) return { coding: c, targets: [] };
    const check = CHECKED_SYSTEMS.get(system);
    if (check) {
      const valid = check(code);
      if (valid) {
        const exact = this.maps.bySystemCode.get(`${system}|${code}`);
        if (exact) return { coding: c, targets: exact.targets };
      }
      const local = this.maps.byCodeNonStandard.get(code);
      if (local) return { coding: relabel(c, local.sourceSystem), targets: local.targets };
      if (valid) return { coding: c, targets: [] };
      return { coding: relabel(c, this.options.localCodeSystem), targets: [] };
    }
    const entry = this.maps.bySystemCode.get(`${system}|${code}`);
    return { coding: c, targets: entry ? entry.targets : [] };
  }

  // ---------------------------------------------------------------------------------------------
  // Shared

  /** Copies the resource body (everything but resourceType, id and meta) through the walker. */
  private walkRoot(src: SyncedResource): Json {
    const out: Json = {};
    for (const [key, value] of Object.entries(src)) {
      if (key === 'resourceType' || key === 'id' || key === 'meta' || ROOT_LEFTOVERS.has(key)) continue;
      const v = this.walk(value, key);
      if (v !== undefined) out[key] = v;
    }
    return out;
  }

  /**
   * A structural copy that drops empty strings, objects and arrays (FHIR forbids them) and
   * normalises references.
   */
  private walk(value: unknown, key: string): unknown {
    if (typeof value === 'string') return value.trim() === '' ? undefined : value;
    if (value === null) return undefined;
    if (typeof value !== 'object') return value;
    if (Array.isArray(value)) {
      const out: unknown[] = [];
      let present = 0;
      for (const item of value) {
        if (key === 'identifier' && this.isDroppedIdentifier(item)) continue;
        // null stays inside arrays: it aligns a primitive array with its _extension twin.
        const v = item === null ? null : this.walk(item, key);
        if (v === undefined) continue;
        out.push(v);
        if (v !== null) present++;
      }
      return present ? out : undefined;
    }
    const obj = value as Json;
    // Reference.identifier is a single Identifier: the privacy filter applies wherever one stands.
    if (key === 'identifier' && this.isDroppedIdentifier(obj)) return undefined;
    if (typeof obj.reference === 'string') return this.reference(obj, key);
    const out: Json = {};
    for (const [k, v] of Object.entries(obj)) {
      const w = this.walk(v, k);
      if (w !== undefined) out[k] = w;
    }
    return Object.keys(out).length ? out : undefined;
  }

  /**
   * A Reference: normalised to relative Type/id (source ids; de-identification hashes them after),
   * or dropped per the settings.
   */
  private reference(ref: Json, key: string): Json | undefined {
    const raw = ref.reference as string;
    let target: string | undefined;
    if (raw.startsWith('#')) {
      target = raw;
    } else {
      const parsed = parseReference(raw, (ref.type as string | undefined) ?? DEFAULT_REF_TYPE[key]);
      if (!parsed) {
        // Not a literal reference we can read: nothing to resolve in the target.
        if (this.options.uncarriedReferences === 'drop') return undefined;
        target = raw;
      } else {
        if (!this.carried.has(parsed.type) && this.options.uncarriedReferences === 'drop') return undefined;
        target = `${parsed.type}/${parsed.id}`;
      }
    }
    const out: Json = {};
    for (const [k, v] of Object.entries(ref)) {
      if (k === 'reference') out.reference = target;
      else {
        const w = this.walk(v, k);
        if (w !== undefined) out[k] = w;
      }
    }
    return out;
  }

  /** The privacy filter: an identifier in a dropped system, or typed SSN, goes wherever it stands. */
  private isDroppedIdentifier(item: unknown): boolean {
    if (!item || typeof item !== 'object') return false;
    const id = item as Json;
    if (typeof id.system === 'string' && this.dropSystems.has(id.system)) return true;
    return this.dropSsnType && isSsnTyped(id);
  }

  /** resourceType, id, meta (profiles vouched for, security labels), then the body. */
  private finish(src: SyncedResource, body: Json, profiles: string[]): SyncedResource {
    const out: Json = { resourceType: src.resourceType, id: src.id };
    const meta: Meta = {};
    if (profiles.length && this.options.profileClaims !== 'drop') meta.profile = profiles;
    const security = src.meta?.security?.length ? (this.walk(src.meta.security, 'security') as Coding[] | undefined) : undefined;
    if (security) meta.security = security;
    if (meta.profile || meta.security) out.meta = meta;
    for (const [k, v] of Object.entries(body)) out[k] = v;
    return out as unknown as SyncedResource;
  }
}

/** Reports each unmapped coding once per resource. */
function reporter(unmapped: UnmappedCoding[]): (c: UnmappedCoding) => void {
  const seen = new Set<string>();
  return (c) => {
    const key = `${c.system}\u0000${c.code}`;
    if (seen.has(key)) return;
    seen.add(key);
    unmapped.push(c);
  };
}

function relabel(c: Coding, system: string): Coding {
  const out: Coding = {};
  for (const [k, v] of Object.entries(c) as [keyof Coding, unknown][]) {
    if (k === 'version') continue; // the version belonged to the wrong system
    (out as Json)[k] = k === 'system' ? system : v;
  }
  return out;
}

function mapQuantities(holder: Json): void {
  if (holder.valueQuantity) holder.valueQuantity = normaliseQuantity(holder.valueQuantity as Quantity);
  if (holder.valueRange) holder.valueRange = mapLowHigh(holder.valueRange as Json);
  if (Array.isArray(holder.referenceRange)) holder.referenceRange = (holder.referenceRange as Json[]).map(mapLowHigh);
}

function mapLowHigh(range: Json): Json {
  if (!range.low && !range.high) return range;
  const out = { ...range };
  if (out.low) out.low = normaliseQuantity(out.low as Quantity);
  if (out.high) out.high = normaliseQuantity(out.high as Quantity);
  return out;
}

function isSsnTyped(id: Json): boolean {
  const type = id.type as CodeableConcept | undefined;
  return (type?.coding ?? []).some((c) => c.code === 'SS' && (c.system === undefined || c.system === V2_0203));
}

/**
 * The source's US Core Patient claim is kept only when the mapped Patient still meets what the
 * profile requires (an identifier with system and value, a name with family or given, a gender);
 * every other source profile is dropped, as the connector cannot vouch for it.
 */
function patientProfiles(src: Patient, body: Json): string[] {
  const claimed = (src.meta?.profile ?? []).filter((p) => p === US_CORE_PATIENT || p.startsWith(`${US_CORE_PATIENT}|`));
  if (!claimed.length) return [];
  const p = body as unknown as Patient;
  const ok =
    (p.identifier ?? []).some((i) => i.system && i.value) &&
    (p.name ?? []).some((n) => n.family || (n.given?.length ?? 0) > 0) &&
    p.gender !== undefined;
  return ok ? claimed : [];
}
