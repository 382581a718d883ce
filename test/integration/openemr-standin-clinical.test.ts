/**
 * The stand-in serves Encounter and Condition as OpenEMR's code does. Pinned against
 * royharden/openemr src/Services/FHIR/FhirEncounterService.php (search parameters _id, patient,
 * date, _lastUpdated on form_encounter.last_update; subject built with createRelativeReference) and
 * src/Services/FHIR/FhirConditionService.php (patient, _id, _lastUpdated on lists.last_updated_time);
 * both gained _lastUpdated in the fix of openemr#7746, so 7.0.2 answers it with an empty bundle.
 * Expectations come from the NDJSON source, not from the stand-in.
 */
import fs from 'node:fs';
import path from 'node:path';
import { OpenEmrStandIn, startOpenEmrStandIn } from '../../stack/openemr';
import { entryIds, fhirGet, getAccessToken } from '../helpers/openemr-standin-client';

const DATA = path.resolve(__dirname, '../..', 'data/synthea-dev');
type Json = Record<string, any>;
const readNdjson = (file: string): Json[] =>
  fs
    .readFileSync(path.join(DATA, file), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Json);
const encounters = readNdjson('Encounter.ndjson');
const conditions = readNdjson('Condition.ndjson');
const uuidOf = (ref: string) => ref.replace('urn:uuid:', '');
const SCOPES = 'system/Patient.read system/Encounter.read system/Condition.read';

let openemr: OpenEmrStandIn;
let old: OpenEmrStandIn;
let token: string;

beforeAll(async () => {
  openemr = await startOpenEmrStandIn();
  old = await startOpenEmrStandIn({ version: '7.0.2' });
  token = await getAccessToken(openemr, SCOPES);
}, 60_000);
afterAll(async () => {
  await openemr?.close();
  await old?.close();
});

const get = (p: string) => fhirGet(openemr, p, token);

test('an Encounter is served with its subject as Patient/<id> and no conditional reference left', async () => {
  const source = encounters[0]!;
  const res = await get(`/Encounter/${source.id}`);
  expect(res.status).toBe(200);
  expect(res.body.subject).toEqual({ reference: `Patient/${uuidOf(source.subject.reference)}`, display: source.subject.display });
  expect(res.text).not.toContain('urn:uuid:');
  expect(res.text).not.toContain('?identifier=');
  expect(res.body.serviceProvider).toBeUndefined();
  expect(res.body.period).toEqual(source.period);
});

test('a Condition points at Patient/<id> and Encounter/<id>', async () => {
  const source = conditions[0]!;
  const res = await get(`/Condition/${source.id}`);
  expect(res.body.subject).toEqual({ reference: `Patient/${uuidOf(source.subject.reference)}` });
  expect(res.body.encounter).toEqual({ reference: `Encounter/${uuidOf(source.encounter.reference)}` });
});

test('patient= answers every Encounter and Condition of that patient, and only those', async () => {
  const patientId = uuidOf(encounters[0]!.subject.reference);
  const e = await get(`/Encounter?patient=${patientId}`);
  expect(entryIds(e.body).sort()).toEqual(
    encounters
      .filter((x) => uuidOf(x.subject.reference) === patientId)
      .map((x) => x.id)
      .sort(),
  );
  const c = await get(`/Condition?patient=Patient/${patientId}`);
  expect(entryIds(c.body).sort()).toEqual(
    conditions
      .filter((x) => uuidOf(x.subject.reference) === patientId)
      .map((x) => x.id)
      .sort(),
  );
});

test('_lastUpdated=ge filters Encounters on the visit row date (period end) and Conditions on recordedDate', async () => {
  // (Rows dated before 1970, which a TIMESTAMP column cannot hold, take the load epoch, 2025-01-01.)
  const since = '2020-01-01T00:00:00Z';
  const e = await get(`/Encounter?_lastUpdated=ge${since}`);
  const rowDate = (x: Json) => Date.parse(x.period.end ?? x.period.start);
  const expected = encounters.filter((x) => rowDate(x) >= Date.parse(since) || rowDate(x) <= 0).map((x) => x.id);
  expect(expected.length).toBeGreaterThan(0);
  expect(entryIds(e.body).sort()).toEqual(expected.sort());
  const c = await get(`/Condition?_lastUpdated=ge${since}`);
  expect(entryIds(c.body).sort()).toEqual(
    conditions
      .filter((x) => Date.parse(x.recordedDate) >= Date.parse(since))
      .map((x) => x.id)
      .sort(),
  );
});

test('an unsupported parameter (Condition has no date) and 7.0.2 _lastUpdated answer an empty 200 bundle', async () => {
  const c = await get('/Condition?date=ge2020-01-01');
  expect(c.status).toBe(200);
  expect(c.body.entry ?? []).toEqual([]);
  const oldToken = await getAccessToken(old, SCOPES);
  const e = await fhirGet(old, '/Encounter?_lastUpdated=ge2000-01-01T00:00:00Z', oldToken);
  expect(e.status).toBe(200);
  expect(e.body.entry ?? []).toEqual([]);
  const all = await fhirGet(old, `/Encounter?patient=${uuidOf(encounters[0]!.subject.reference)}`, oldToken);
  expect((all.body.entry ?? []).length).toBeGreaterThan(0);
});

test('an unknown Encounter id is 404 with body []', async () => {
  const res = await get('/Encounter/00000000-0000-0000-0000-000000000000');
  expect(res.status).toBe(404);
  expect(res.text).toBe('[]');
});
