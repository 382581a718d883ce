/**
 * The stand-in serves Immunization, Procedure, MedicationRequest and AllergyIntolerance as OpenEMR's
 * code does (royharden/openemr, src/Services/FHIR/…):
 * - FhirImmunizationService.php: search patient, _id, _lastUpdated (immunizations.update_date);
 *   the Patient in `patient`; vaccineCode labelled CVX;
 * - FhirProcedureService.php (+ Procedure/FhirProcedureSurgeryService.php): patient, date, _id,
 *   _lastUpdated; a list-entry procedure has one date, served as performedDateTime (begdate), no
 *   location and no reasonReference;
 * - FhirMedicationRequestService.php: patient, intent, status, _id, _lastUpdated
 *   (prescriptions.date_modified); populateCategory() writes "community" when the row has none;
 * - FhirAllergyIntoleranceService.php: patient, _id, _lastUpdated (lists.modifydate); category
 *   always "medication"; the title as an unescaped "additional" narrative; a data-absent code.
 * All four gained `_lastUpdated` with openemr#7746 (#7754): 7.0.2 answers it with an empty bundle.
 * Expectations come from the NDJSON source, not from the stand-in.
 */
import fs from 'node:fs';
import path from 'node:path';
import { defaultDirectoryDir, type OpenEmrStandIn } from '../../stack/openemr';
import { allergySampleNdjson } from '../../stack/openemr/services/allergy-sample';
import { readNdjson } from '../fixtures/mapping/load';
import { startTypeStandIns, type TypeStandIns } from '../helpers/carried-types';
import { entryIds, fhirGet, getAccessToken } from '../helpers/openemr-standin-client';

const DATA = path.resolve(__dirname, '../..', 'data/synthea-dev');
type Json = Record<string, any>;
const read = (file: string) => readNdjson<Json>(path.join(DATA, file));
const immunizations = read('Immunization.ndjson');
const procedures = read('Procedure.ndjson');
const medicationRequests = read('MedicationRequest.ndjson');
const allergies = read('AllergyIntolerance.ndjson');
/** Synthea conditional reference -> the directory row it stands for (data/openemr-directory). */
const links = JSON.parse(fs.readFileSync(path.join(defaultDirectoryDir(), 'links.json'), 'utf8')) as Record<string, string>;
const uuidOf = (ref: string) => ref.replace('urn:uuid:', '').replace('Patient/', '');

let standIns: TypeStandIns;
let openemr: OpenEmrStandIn;
/** 7.0.2, before `_lastUpdated` was honoured. */
let getOld: TypeStandIns['getBeside'];

beforeAll(async () => {
  standIns = await startTypeStandIns(['Patient', 'Immunization', 'Procedure', 'MedicationRequest', 'AllergyIntolerance'], {
    version: '7.0.2',
  });
  ({ openemr, getBeside: getOld } = standIns);
}, 60_000);
afterAll(() => standIns?.close());

const get = (p: string) => standIns.get(p);
const sortedIds = (list: Json[]) => list.map((x) => x.id as string).sort();

test('the AllergyIntolerance sample file is what its generator (from FhirAllergyIntoleranceService.php) gives', () => {
  expect(fs.readFileSync(path.join(DATA, 'AllergyIntolerance.ndjson'), 'utf8')).toBe(
    allergySampleNdjson(fs.readFileSync(path.join(DATA, 'Patient.ndjson'), 'utf8')),
  );
});

test('an Immunization names its Patient in patient, its Encounter as Encounter/<id> and its facility as Location/<id>', async () => {
  const source = immunizations[0]!;
  const res = await get(`/Immunization/${source.id}`);
  expect(res.status).toBe(200);
  expect(res.body.patient).toEqual({ reference: `Patient/${uuidOf(source.patient.reference)}` });
  expect(res.body.encounter).toEqual({ reference: `Encounter/${uuidOf(source.encounter.reference)}` });
  expect(res.body.vaccineCode).toEqual(source.vaccineCode);
  // FhirImmunizationService.php:214-217: location is Location/<facility_location_uuid>, the linked facility.
  expect(res.body.location.reference).toBe(links[source.location.reference]);
  expect(res.body.location.reference).toMatch(/^Location\//);
  expect(res.body.meta.versionId).toBe('1');
});

test('a Procedure is served with performedDateTime (one list date), without location and reasonReference', async () => {
  const source = procedures[0]!;
  const res = await get(`/Procedure/${source.id}`);
  expect(res.body.performedDateTime).toBe(source.performedPeriod.start);
  expect(res.body.performedPeriod).toBeUndefined();
  expect(res.body.reasonReference).toBeUndefined();
  expect(res.body.location).toBeUndefined();
  expect(res.body.code).toEqual(source.code);
});

test('a MedicationRequest carries the "community" category populateCategory() writes, and its prescriber as requester', async () => {
  const source = medicationRequests[0]!;
  const res = await get(`/MedicationRequest/${source.id}`);
  expect(res.body.category).toEqual([
    {
      coding: [
        { system: 'http://terminology.hl7.org/CodeSystem/medicationrequest-category', code: 'community', display: 'Home/Community' },
      ],
    },
  ]);
  expect(res.body.medicationCodeableConcept).toEqual(source.medicationCodeableConcept);
  // FhirMedicationRequestService.php:450: requester is Practitioner/<the prescription's provider uuid>.
  expect(res.body.requester.reference).toBe(links[source.requester.reference]);
  expect(res.body.requester.reference).toMatch(/^Practitioner\//);
});

test('an AllergyIntolerance keeps its unescaped narrative and its meta.lastUpdated is lists.modifydate', async () => {
  const source = allergies.find((a) => a.text.div.includes('&'))!;
  const res = await get(`/AllergyIntolerance/${source.id}`);
  expect(res.body.text).toEqual(source.text);
  expect(Date.parse(res.body.meta.lastUpdated)).toBe(Date.parse(source.meta.lastUpdated));
  expect(res.body.category).toEqual(['medication']);
  const uncoded = allergies.find((a) => a.code.coding[0].code === 'unknown')!;
  expect((await get(`/AllergyIntolerance/${uncoded.id}`)).body.code).toEqual({
    coding: [{ system: 'http://terminology.hl7.org/CodeSystem/data-absent-reason', code: 'unknown', display: 'Unknown' }],
  });
});

test('patient= answers every resource of that patient for each type, and only those', async () => {
  for (const [type, list, element] of [
    ['Immunization', immunizations, 'patient'],
    ['Procedure', procedures, 'subject'],
    ['MedicationRequest', medicationRequests, 'subject'],
    ['AllergyIntolerance', allergies, 'patient'],
  ] as const) {
    const patientId = uuidOf(list[0]![element].reference);
    const res = await get(`/${type}?patient=${patientId}`);
    expect(entryIds(res.body).sort()).toEqual(sortedIds(list.filter((x) => uuidOf(x[element].reference) === patientId)));
  }
});

test('_lastUpdated=ge compares each type with its row date column', async () => {
  const since = '2020-01-01T00:00:00Z';
  const after = (t: string | undefined) => t !== undefined && (Date.parse(t) >= Date.parse(since) || Date.parse(t) <= 0);
  // immunizations.update_date of an imported row: its administration date.
  const i = await get(`/Immunization?_lastUpdated=ge${since}`);
  const expected = sortedIds(immunizations.filter((x) => after(x.occurrenceDateTime)));
  expect(expected.length).toBeGreaterThan(0);
  expect(entryIds(i.body).sort()).toEqual(expected);
  // lists.modifydate of the allergy sample, spread over 2024.
  const a = await get('/AllergyIntolerance?_lastUpdated=ge2024-07-01T00:00:00Z');
  const expectedAllergies = sortedIds(allergies.filter((x) => Date.parse(x.meta.lastUpdated) >= Date.parse('2024-07-01T00:00:00Z')));
  expect(expectedAllergies.length).toBeGreaterThan(0);
  expect(expectedAllergies.length).toBeLessThan(allergies.length);
  expect(entryIds(a.body).sort()).toEqual(expectedAllergies);
});

test('Procedure date compares performedDateTime; MedicationRequest status and intent are tokens', async () => {
  const p = await get('/Procedure?date=ge2010-01-01');
  expect(entryIds(p.body).sort()).toEqual(
    sortedIds(procedures.filter((x) => Date.parse(x.performedPeriod.start) >= Date.parse('2010-01-01T00:00:00Z'))),
  );
  const m = await get('/MedicationRequest?status=active&intent=order');
  expect(entryIds(m.body).sort()).toEqual(sortedIds(medicationRequests.filter((x) => x.status === 'active' && x.intent === 'order')));
  const stopped = await get('/MedicationRequest?status=stopped,cancelled');
  const expectedStopped = sortedIds(medicationRequests.filter((x) => x.status === 'stopped'));
  expect(expectedStopped.length).toBeGreaterThan(0);
  expect(entryIds(stopped.body).sort()).toEqual(expectedStopped);
});

test('an unsupported parameter (Immunization has no date, AllergyIntolerance no code) and 7.0.2 _lastUpdated answer an empty 200 bundle', async () => {
  for (const p of ['/Immunization?date=ge2020-01-01', '/AllergyIntolerance?code=7980', '/MedicationRequest?date=ge2000-01-01']) {
    const res = await get(p);
    expect(res.status).toBe(200);
    expect(res.body.entry ?? []).toEqual([]);
  }
  const e = await getOld('/Immunization?_lastUpdated=ge2000-01-01T00:00:00Z');
  expect(e.status).toBe(200);
  expect(e.body.entry ?? []).toEqual([]);
  const all = await getOld(`/Immunization?patient=${uuidOf(immunizations[0]!.patient.reference)}`);
  expect((all.body.entry ?? []).length).toBeGreaterThan(0);
});

test('a search without the type scope is 401, and an unknown id is 404 []', async () => {
  const narrow = await getAccessToken(openemr, 'system/Patient.read');
  expect((await fhirGet(openemr, '/Procedure?patient=' + uuidOf(procedures[0]!.subject.reference), narrow)).status).toBe(401);
  const res = await get('/AllergyIntolerance/00000000-0000-0000-0000-000000000000');
  expect(res.status).toBe(404);
  expect(res.text).toBe('[]');
});
