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
import { defaultDirectoryDir } from '../../stack/openemr';
import { readNdjson } from '../fixtures/mapping/load';
import { startTypeStandIns, type TypeStandIns } from '../helpers/carried-types';
import { entryIds } from '../helpers/openemr-standin-client';

const DATA = path.resolve(__dirname, '../..', 'data/synthea-dev');
type Json = Record<string, any>;
const encounters = readNdjson<Json>(path.join(DATA, 'Encounter.ndjson'));
const conditions = readNdjson<Json>(path.join(DATA, 'Condition.ndjson'));
/** Synthea conditional reference -> the directory row it stands for (data/openemr-directory). */
const links = JSON.parse(fs.readFileSync(path.join(defaultDirectoryDir(), 'links.json'), 'utf8')) as Record<string, string>;
const uuidOf = (ref: string) => ref.replace('urn:uuid:', '');

let standIns: TypeStandIns;
/** 7.0.2, before `_lastUpdated` was honoured. */
let getOld: TypeStandIns['getBeside'];

beforeAll(async () => {
  standIns = await startTypeStandIns(['Patient', 'Encounter', 'Condition'], { version: '7.0.2' });
  getOld = standIns.getBeside;
}, 60_000);
afterAll(() => standIns?.close());

const get = (p: string) => standIns.get(p);

test('an Encounter is served with its subject as Patient/<id>, its facility as Organization/<id> and no conditional reference left', async () => {
  const source = encounters[0]!;
  const res = await get(`/Encounter/${source.id}`);
  expect(res.status).toBe(200);
  expect(res.body.subject).toEqual({ reference: `Patient/${uuidOf(source.subject.reference)}`, display: source.subject.display });
  expect(res.text).not.toContain('urn:uuid:');
  expect(res.text).not.toContain('?identifier=');
  // The facility row the sample's conditional reference stands for (openemr-standin-directory.test.ts pins the rest).
  expect(res.body.serviceProvider.reference).toBe(links[source.serviceProvider.reference]);
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
  const e = await getOld('/Encounter?_lastUpdated=ge2000-01-01T00:00:00Z');
  expect(e.status).toBe(200);
  expect(e.body.entry ?? []).toEqual([]);
  const all = await getOld(`/Encounter?patient=${uuidOf(encounters[0]!.subject.reference)}`);
  expect((all.body.entry ?? []).length).toBeGreaterThan(0);
});

test('an unknown Encounter id is 404 with body []', async () => {
  const res = await get('/Encounter/00000000-0000-0000-0000-000000000000');
  expect(res.status).toBe(404);
  expect(res.text).toBe('[]');
});
