import type {
  AllergyIntolerance,
  Condition,
  DiagnosticReport,
  DocumentReference,
  Encounter,
  Immunization,
  Location,
  MedicationRequest,
  Observation,
  Organization,
  Patient,
  Practitioner,
  Procedure,
  Resource,
} from '@medplum/fhirtypes';

export type {
  AllergyIntolerance,
  Condition,
  DiagnosticReport,
  DocumentReference,
  Encounter,
  Immunization,
  Location,
  MedicationRequest,
  Observation,
  Organization,
  Patient,
  Practitioner,
  Procedure,
  Resource,
};

// The types the connector can carry are rows of src/sync/resource-types.ts (KNOWN_RESOURCE_TYPES);
// what a deployment carries is config.sync.resourceTypes (SYNC_RESOURCE_TYPES). No list here.

export type SyncedResource =
  | Patient
  | Observation
  | Encounter
  | Condition
  | Immunization
  | Procedure
  | MedicationRequest
  | AllergyIntolerance
  | DiagnosticReport
  | DocumentReference
  | Practitioner
  | Organization
  | Location;

/** A resource the connector identifies without carrying its content (dead letters, reports, logs). */
export interface ResourceKey {
  resourceType: string;
  id: string;
}

export function keyString(key: ResourceKey): string {
  return `${key.resourceType}/${key.id}`;
}

/** Items grouped by resource type, in first-seen order (one partition, one transaction, one id set each). */
export function byResourceType<T extends { resourceType: string }>(items: readonly T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const group = groups.get(item.resourceType);
    if (group) group.push(item);
    else groups.set(item.resourceType, [item]);
  }
  return groups;
}
