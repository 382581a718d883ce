/**
 * Mapping of Immunization, Procedure, MedicationRequest and AllergyIntolerance (rows in
 * src/sync/resource-types-medical.ts): references kept, OpenEMR's mislabelled codes (an inventory
 * drug code in the RxNorm slot: royharden/openemr src/Services/FHIR/FhirMedicationRequestService.php
 * populateMedication() with PrescriptionService.php's `drugs.drug_code` fallback; a cvx_code that is
 * not CVX: FhirImmunizationService.php) re-labelled and mapped, de-identification consistent with
 * the Patient named in `patient` or `subject`, and validation before anything is written (a
 * data-absent extension object in performedDateTime: FhirProcedureOEProcedureService.php under US
 * Core 3.1.1).
 */
import path from 'node:path';
import type { AllergyIntolerance, Immunization, MedicationRequest, Patient, Procedure } from '@medplum/fhirtypes';
import { createResourceMapper, type MapOutcome } from '../../src/mapping';
import type { SyncedResource } from '../../src/fhir/types';
import { KNOWN_RESOURCE_TYPES, specOf } from '../../src/sync/resource-types';
import { DEFAULT_OPTIONS, deidOptions, readNdjson } from '../fixtures/mapping/load';

const DATA = path.resolve(__dirname, '../..', 'data/synthea-dev');
const EXAMPLE_DRUGS = path.resolve(__dirname, '../..', 'mappings/examples/openemr-local-drugs.example.json');
const RXNORM = 'http://www.nlm.nih.gov/research/umls/rxnorm';
const CVX = 'http://hl7.org/fhir/sid/cvx';
const CARRIED = [...KNOWN_RESOURCE_TYPES];
const all = <T>(file: string): T[] => readNdjson<T>(path.join(DATA, file));
/** As OpenEMR serves them: urn:uuid references resolved to Type/id. */
function served<T>(r: T, patientElement: 'subject' | 'patient'): T {
  const out = JSON.parse(JSON.stringify(r)) as Record<string, any>;
  out[patientElement] = { reference: `Patient/${String(out[patientElement].reference).replace(/^(urn:uuid:|Patient\/)/, '')}` };
  if (out.encounter) out.encounter = { reference: `Encounter/${String(out.encounter.reference).replace('urn:uuid:', '')}` };
  return out as T;
}
function ok(outcome: MapOutcome): Extract<MapOutcome, { ok: true }> {
  if (!outcome.ok) throw new Error(`expected ok, got: ${outcome.reason}`);
  return outcome;
}
const DAY = 86_400_000;
const shiftOf = (a: string, b: string) => Math.round((Date.parse(b.slice(0, 10)) - Date.parse(a.slice(0, 10))) / DAY);

const immunization = served(all<Immunization>('Immunization.ndjson')[0]!, 'patient');
const procedure = served(all<Procedure>('Procedure.ndjson')[0]!, 'subject');
const medicationRequest = served(all<MedicationRequest>('MedicationRequest.ndjson')[0]!, 'subject');
const allergy = all<AllergyIntolerance>('AllergyIntolerance.ndjson')[0]!;
const mapper = createResourceMapper({ ...DEFAULT_OPTIONS, carriedTypes: CARRIED });

test('each type maps with its Patient and Encounter references kept, byte-identical on a second map', () => {
  for (const [r, element] of [
    [immunization, 'patient'],
    [procedure, 'subject'],
    [medicationRequest, 'subject'],
    [allergy, 'patient'],
  ] as const) {
    const out = ok(mapper.map(r as SyncedResource));
    const m = out.resource as unknown as Record<string, any>;
    expect(m[element]).toEqual((r as unknown as Record<string, any>)[element]);
    if ((r as { encounter?: unknown }).encounter) expect(m.encounter).toEqual((r as { encounter?: unknown }).encounter);
    expect(out.unmapped).toEqual([]);
    expect(JSON.stringify(ok(mapper.map(r as SyncedResource)).resource)).toBe(JSON.stringify(m));
  }
});

test('an inventory drug code OpenEMR labels RxNorm is re-labelled local and reported; a map adds its RXCUI', () => {
  const local: MedicationRequest = {
    ...medicationRequest,
    medicationCodeableConcept: { coding: [{ system: RXNORM, code: 'ASA81-EC', display: 'Aspirin 81' }] },
  };
  const plain = ok(mapper.map(local as SyncedResource));
  expect((plain.resource as MedicationRequest).medicationCodeableConcept!.coding).toEqual([
    { system: 'urn:openemr:local-code', code: 'ASA81-EC', display: 'Aspirin 81' },
  ]);
  expect(plain.unmapped).toEqual([{ system: 'urn:openemr:local-code', code: 'ASA81-EC', display: 'Aspirin 81' }]);
  const withMap = createResourceMapper({ ...DEFAULT_OPTIONS, carriedTypes: CARRIED, conceptMapFiles: [EXAMPLE_DRUGS] });
  const mapped = ok(withMap.map(local as SyncedResource));
  expect((mapped.resource as MedicationRequest).medicationCodeableConcept!.coding).toEqual([
    { system: 'urn:openemr:local-code', code: 'ASA81-EC', display: 'Aspirin 81' },
    { system: RXNORM, code: '308416', display: 'aspirin 81 MG Delayed Release Oral Tablet' },
  ]);
  expect(mapped.unmapped).toEqual([]);
  // A real RXCUI is left alone.
  expect((ok(mapper.map(medicationRequest as SyncedResource)).resource as MedicationRequest).medicationCodeableConcept).toEqual(
    medicationRequest.medicationCodeableConcept,
  );
});

test('a cvx_code that is not a CVX code is not sent as CVX', () => {
  const odd: Immunization = { ...immunization, vaccineCode: { coding: [{ system: CVX, code: 'FLU-2024' }] } };
  const out = ok(mapper.map(odd as SyncedResource));
  expect((out.resource as Immunization).vaccineCode.coding).toEqual([{ system: 'urn:openemr:local-code', code: 'FLU-2024' }]);
  expect(out.unmapped).toEqual([{ system: 'urn:openemr:local-code', code: 'FLU-2024' }]);
});

test('de-identification shifts every type by the offset of the Patient it names (patient or subject) and drops free text and lot numbers', () => {
  const deid = createResourceMapper({ ...deidOptions(), carriedTypes: CARRIED });
  const patientId = immunization.patient.reference!.slice('Patient/'.length);
  const patient = all<Patient>('Patient.ndjson').find((p) => p.id === patientId)!;
  const shift = shiftOf(patient.birthDate!, (ok(deid.map(patient as SyncedResource)).resource as Patient).birthDate!);
  expect(shift).not.toBe(0);
  const i = ok(deid.map({ ...immunization, lotNumber: 'LOT-123', note: [{ text: 'left arm' }] } as SyncedResource))
    .resource as Immunization;
  expect(shiftOf(immunization.occurrenceDateTime!, i.occurrenceDateTime!)).toBe(shift);
  expect(i.lotNumber).toBeUndefined();
  expect(i.note).toBeUndefined();
  const sameMr: MedicationRequest = { ...medicationRequest, subject: { reference: `Patient/${patientId}` } };
  const m = ok(deid.map(sameMr as SyncedResource)).resource as MedicationRequest;
  expect(shiftOf(medicationRequest.authoredOn!, m.authoredOn!)).toBe(shift);
  expect(m.subject!.reference).toBe(i.patient.reference);
  const a = ok(deid.map(allergy as SyncedResource)).resource as AllergyIntolerance;
  expect(a.text).toBeUndefined();
  expect(JSON.stringify(a)).not.toContain(allergy.patient.reference!.slice('Patient/'.length));
});

test("OpenEMR's data-absent extension object in performedDateTime and two medication[x] choices are refused before writing, naming only the element", () => {
  const dar = { extension: [{ extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'unknown' }] }] };
  const badDate = mapper.map({ ...procedure, performedDateTime: dar } as unknown as SyncedResource);
  expect(badDate.ok).toBe(false);
  expect(!badDate.ok && badDate.reason).toMatch(/^FHIR validation failed: Procedure\.performedDateTime/);
  const two = mapper.map({ ...medicationRequest, medicationReference: { reference: 'Medication/1' } } as SyncedResource);
  expect(!two.ok && two.reason).toMatch(/^FHIR validation failed: MedicationRequest\.medication\S*: .*more than one/i);
});

test('a code outside its required value set (an edited status, a category) is refused naming the element and value set only', () => {
  const bad = mapper.map({ ...immunization, status: 'given' } as unknown as SyncedResource);
  expect(!bad.ok && bad.reason).toBe('FHIR validation failed: Immunization.status: Value not in required value set immunization-status');
  const category = mapper.map({ ...allergy, category: ['medication', 'drug'] } as unknown as SyncedResource);
  expect(!category.ok && category.reason).toMatch(
    /AllergyIntolerance\.category: Value not in required value set allergy-intolerance-category/,
  );
  expect(!category.ok && category.reason).not.toContain('drug');
  for (const status of ['preparation', 'entered-in-error', 'unknown'])
    expect(mapper.map({ ...procedure, status } as SyncedResource).ok).toBe(true);
});

// FhirProcedureOEProcedureService.php (royharden/openemr) adds basedOn -> ServiceRequest (the
// procedure_order) to every order's Procedure, and would add reasonReference -> Condition from a
// reason_reference_uuid ProcedureService::search never selects.
test("a Procedure's basedOn ServiceRequest follows MAPPING_UNCARRIED_REFERENCES; a reasonReference to a carried Condition stays", () => {
  const order = { ...procedure, basedOn: [{ reference: 'ServiceRequest/order-1' }], reasonReference: [{ reference: 'Condition/c-1' }] };
  const kept = ok(mapper.map(order as SyncedResource)).resource as unknown as Procedure;
  expect(kept.basedOn).toEqual([{ reference: 'ServiceRequest/order-1' }]);
  expect(kept.reasonReference).toEqual([{ reference: 'Condition/c-1' }]);
  const dropping = createResourceMapper({ ...DEFAULT_OPTIONS, uncarriedReferences: 'drop', carriedTypes: CARRIED });
  const dropped = ok(dropping.map(order as SyncedResource)).resource as unknown as Procedure;
  expect(dropped.basedOn).toBeUndefined();
  expect(dropped.reasonReference).toEqual([{ reference: 'Condition/c-1' }]);
  expect(specOf('Procedure').references.map((r) => r.type)).not.toContain('ServiceRequest');
});
