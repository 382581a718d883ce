import type { SyncedResource } from '../fhir/types';

/** Mapping settings (a slice of Config: config.mapping + config.privacy). */
export interface MappingOptions {
  /** Extra ConceptMap JSON files, applied after the shipped ones. */
  conceptMapFiles: string[];
  /** System for codes labelled LOINC that are not valid LOINC and no map covers. */
  localCodeSystem: string;
  /** References to types the sync does not carry (Encounter, ...). */
  uncarriedReferences: 'keep' | 'drop';
  /** The types the sync carries (SYNC_RESOURCE_TYPES); default Patient and Observation. */
  carriedTypes?: readonly string[];
  /** Identifier systems removed before anything leaves the connector. */
  dropIdentifierSystems: string[];
  deid: { enabled: boolean; key?: string };
  /**
   * keep (default): meta.profile names the profiles the mapper vouches for (US Core); drop: none, for a
   * target that does not know them (HL7's validator in HAPI FHIR refuses a resource claiming an unknown profile).
   */
  profileClaims?: 'keep' | 'drop';
  /** How strictly mapped resources are checked before they are written (validate.ts); default ahds. */
  validation?: 'ahds' | 'strict';
}

export interface UnmappedCoding {
  system: string;
  code: string;
  display?: string;
}

export type MapOutcome =
  | { ok: true; resource: SyncedResource; unmapped: UnmappedCoding[] }
  /** reason names paths and rules only: it ends up in dead letters and telemetry, so never values. */
  | { ok: false; reason: string };

export interface ResourceMapper {
  /** Pure and deterministic: the same input always gives the same output (key order included). */
  map(resource: SyncedResource): MapOutcome;
  /** The id a source resource has in the target (differs from the source id in de-identification mode). */
  targetId(resourceType: string, sourceId: string): string;
}
