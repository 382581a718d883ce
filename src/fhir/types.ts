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

/** The resource types this connector can carry (SYNC_RESOURCE_TYPES picks; src/sync/resource-types.ts describes each). */
export const SYNCED_TYPES = [
  'Patient',
  'Encounter',
  'Condition',
  'Observation',
  'Immunization',
  'Procedure',
  'MedicationRequest',
  'AllergyIntolerance',
  'DiagnosticReport',
  'DocumentReference',
  'Practitioner',
  'Organization',
  'Location',
] as const;
export type SyncedType = (typeof SYNCED_TYPES)[number];

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
