import type { Observation, Patient, Resource } from '@medplum/fhirtypes';

export type { Observation, Patient, Resource };

/** The resource types this connector carries. */
export const SYNCED_TYPES = ['Patient', 'Observation'] as const;
export type SyncedType = (typeof SYNCED_TYPES)[number];

export type SyncedResource = Patient | Observation;

/** A resource the connector identifies without carrying its content (dead letters, reports, logs). */
export interface ResourceKey {
  resourceType: string;
  id: string;
}

export function keyString(key: ResourceKey): string {
  return `${key.resourceType}/${key.id}`;
}
