/**
 * Mapping of the types beyond Patient and Observation (src/sync/resource-types.ts): references
 * rewritten, terminology through the ConceptMaps, and de-identification consistent across types
 * (one date shift per Patient, one keyed hash per id in every reference).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Condition, Encounter, Patient } from '@medplum/fhirtypes';
import { createResourceMapper, type MapOutcome } from '../../src/mapping';
import type { SyncedResource } from '../../src/fhir/types';
import { DEFAULT_OPTIONS, deidOptions } from '../fixtures/mapping/load';

const DATA = path.resolve(__dirname, '../..', 'data/synthea-dev');
const first = <T>(file: string, pick: (r: any) => boolean = () => true): T =>
  fs
    .readFileSync(path.join(DATA, file), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l))
    .find(pick) as T;
/** As OpenEMR serves them: urn:uuid references resolved to Type/id. */
const served = <T>(r: T): T => JSON.parse(JSON.stringify(r).replace(/"urn:uuid:([^"]+)"/g, (_m, id: string) => `"${id}"`)) as T;
function ok(outcome: MapOutcome): Extract<MapOutcome, { ok: true }> {
  if (!outcome.ok) throw new Error(`expected ok, got: ${outcome.reason}`);
  return outcome;
}
const DAY = 86_400_000;
const shiftOf = (a: string, b: string) => Math.round((Date.parse(b.slice(0, 10)) - Date.parse(a.slice(0, 10))) / DAY);

const condition = served(first<Condition>('Condition.ndjson'));
condition.subject = { reference: `Patient/${condition.subject!.reference}` };
condition.encounter = { reference: `Encounter/${condition.encounter!.reference}` };
const patientId = condition.subject.reference!.slice('Patient/'.length);
const encounterId = condition.encounter.reference!.slice('Encounter/'.length);
const encounter = served(first<Encounter>('Encounter.ndjson', (e) => e.id === encounterId));
encounter.subject = { reference: `Patient/${patientId}` };
const patient = first<Patient>('Patient.ndjson', (p) => p.id === patientId);

test('Encounter and Condition map with their references kept and a local code in a SNOMED CT slot relabelled', () => {
  const mapper = createResourceMapper({ ...DEFAULT_OPTIONS, carriedTypes: ['Patient', 'Encounter', 'Condition', 'Observation'] });
  const c = ok(mapper.map(condition as SyncedResource)).resource as Condition;
  expect(c.subject).toEqual({ reference: `Patient/${patientId}` });
  expect(c.encounter).toEqual({ reference: `Encounter/${encounterId}` });
  // "112141AAAA…" is a CIEL-style code OpenEMR labels SNOMED CT: it is not SNOMED CT.
  expect(condition.code!.coding![0]!.system).toBe('http://snomed.info/sct');
  expect(c.code!.coding!.some((x) => x.system === 'http://snomed.info/sct' && x.code === condition.code!.coding![0]!.code)).toBe(false);
  const e = ok(mapper.map(encounter as SyncedResource));
  expect((e.resource as Encounter).subject).toEqual({ reference: `Patient/${patientId}` });
  // Deterministic: the same input gives byte-identical output.
  expect(JSON.stringify(ok(mapper.map(condition as SyncedResource)).resource)).toBe(JSON.stringify(c));
});

test("de-identification shifts every type by its Patient's offset and hashes ids the same way in every reference", () => {
  const mapper = createResourceMapper({ ...deidOptions(), carriedTypes: ['Patient', 'Encounter', 'Condition', 'Observation'] });
  const p = ok(mapper.map(patient as SyncedResource)).resource as Patient;
  const e = ok(mapper.map(encounter as SyncedResource)).resource as Encounter;
  const c = ok(mapper.map(condition as SyncedResource)).resource as Condition;
  const shift = shiftOf(patient.birthDate!, p.birthDate!);
  expect(shift).not.toBe(0);
  expect(shiftOf(encounter.period!.start!, e.period!.start!)).toBe(shift);
  expect(shiftOf(condition.onsetDateTime!, c.onsetDateTime!)).toBe(shift);
  expect(c.subject!.reference).toBe(`Patient/${p.id}`);
  expect(e.subject!.reference).toBe(`Patient/${p.id}`);
  expect(c.encounter!.reference).toBe(`Encounter/${e.id}`);
  expect(e.id).not.toBe(encounterId);
  // Identifiers, narrative and displays (names) are gone.
  expect(e.identifier).toBeUndefined();
  expect(JSON.stringify(e)).not.toContain(encounterId);
  expect(JSON.stringify(e)).not.toContain((encounter.subject as { display?: string }).display ?? '\u0000');
});
