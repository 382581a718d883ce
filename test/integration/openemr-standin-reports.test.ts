/**
 * The stand-in serves DiagnosticReport and DocumentReference as OpenEMR's code does. Pinned against
 * royharden/openemr:
 * - src/Services/FHIR/FhirDiagnosticReportService.php loadSearchParameters: patient, code, category,
 *   date, _id, _lastUpdated; sub-services DiagnosticReport/FhirDiagnosticReportClinicalNotesService.php
 *   (_lastUpdated and meta.lastUpdated on form_clinical_notes.last_updated; the note inline as
 *   presentedForm.data) and DiagnosticReport/FhirDiagnosticReportLaboratoryService.php (report_date;
 *   result -> Observation/<uuid>).
 * - src/Services/FHIR/FhirDocumentReferenceService.php loadSearchParameters: patient, type, category,
 *   date, _id, _lastUpdated; every sub-service (DocumentReference/FhirClinicalNotesService.php,
 *   FhirPatientDocumentReferenceService.php, FhirDocumentReferenceAdvanceCareDirectiveService.php)
 *   compares _lastUpdated with its `date` column and stamps meta.lastUpdated with it.
 * Both gained _lastUpdated in the fix of openemr#7746 (commit 48527473b), so 7.0.2 answers it with an
 * empty bundle. Expectations come from the NDJSON source, not from the stand-in.
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
const reports = readNdjson('DiagnosticReport.ndjson');
const documents = readNdjson('DocumentReference.ndjson');
const uuidOf = (ref: string) => ref.replace('urn:uuid:', '');
const SCOPES = 'system/Patient.read system/DiagnosticReport.read system/DocumentReference.read';

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
const sorted = (ids: string[]) => [...ids].sort();

test('every sample DiagnosticReport and DocumentReference is loaded', () => {
  expect(openemr.store.count('DiagnosticReport')).toBe(reports.length);
  expect(openemr.store.count('DocumentReference')).toBe(documents.length);
  expect(reports.length).toBe(968);
});

test('a DiagnosticReport points at Patient/<id> and Encounter/<id>, keeps its note inline, and has no conditional reference left', async () => {
  const source = reports[0]!;
  const res = await get(`/DiagnosticReport/${source.id}`);
  expect(res.status).toBe(200);
  expect(res.body.subject).toEqual({ reference: `Patient/${uuidOf(source.subject.reference)}` });
  expect(res.body.encounter).toEqual({ reference: `Encounter/${uuidOf(source.encounter.reference)}` });
  expect(res.body.presentedForm).toEqual(source.presentedForm);
  expect(res.body.performer).toBeUndefined();
  expect(res.text).not.toContain('urn:uuid:');
  expect(res.text).not.toContain('?identifier=');
});

test('a DocumentReference points at its Encounter through context.encounter and keeps its attachment data', async () => {
  const source = documents[0]!;
  const res = await get(`/DocumentReference/${source.id}`);
  expect(res.body.subject).toEqual({ reference: `Patient/${uuidOf(source.subject.reference)}` });
  expect(res.body.context.encounter).toEqual([{ reference: `Encounter/${uuidOf(source.context.encounter[0].reference)}` }]);
  expect(res.body.content).toEqual(source.content);
  expect(res.body.author).toBeUndefined();
  expect(res.body.custodian).toBeUndefined();
});

test('patient= answers every report and document of that patient, and only those', async () => {
  const patientId = uuidOf(reports[0]!.subject.reference);
  const r = await get(`/DiagnosticReport?patient=${patientId}`);
  expect(sorted(entryIds(r.body))).toEqual(sorted(reports.filter((x) => uuidOf(x.subject.reference) === patientId).map((x) => x.id)));
  const d = await get(`/DocumentReference?patient=Patient/${patientId}`);
  expect(sorted(entryIds(d.body))).toEqual(sorted(documents.filter((x) => uuidOf(x.subject.reference) === patientId).map((x) => x.id)));
});

test('_lastUpdated=ge compares DiagnosticReport.issued (the note row / report date) and DocumentReference.date, which meta.lastUpdated shows', async () => {
  // (Notes issued before 1970, which the TIMESTAMP form_clinical_notes.last_updated cannot hold, take the load epoch, 2025-01-01.)
  const since = '2020-01-01T00:00:00Z';
  const r = await get(`/DiagnosticReport?_lastUpdated=ge${since}`);
  const issued = (x: Json) => Date.parse(x.issued);
  const expected = reports.filter((x) => issued(x) >= Date.parse(since) || issued(x) <= 0).map((x) => x.id);
  expect(expected.length).toBeGreaterThan(0);
  expect(expected.length).toBeLessThan(reports.length);
  expect(sorted(entryIds(r.body))).toEqual(sorted(expected));
  const d = await get(`/DocumentReference?_lastUpdated=ge${since}`);
  expect(sorted(entryIds(d.body))).toEqual(sorted(documents.filter((x) => Date.parse(x.date) >= Date.parse(since)).map((x) => x.id)));
  const one = await get(`/DocumentReference/${documents[0]!.id}`);
  expect(Date.parse(one.body.meta.lastUpdated)).toBe(Math.floor(Date.parse(documents[0]!.date) / 1000) * 1000);
});

test('code/type and category are token searches on their elements', async () => {
  const byCode = await get('/DiagnosticReport?code=http://loinc.org|34117-2');
  expect(entryIds(byCode.body).length).toBe(reports.length);
  const byType = await get('/DocumentReference?type=http://loinc.org|99999-9');
  expect(byType.body.entry ?? []).toEqual([]);
  const byCategory = await get('/DocumentReference?category=clinical-note');
  expect(entryIds(byCategory.body).length).toBe(documents.length);
});

test('an unsupported parameter and 7.0.2 _lastUpdated answer an empty 200 bundle', async () => {
  const r = await get('/DiagnosticReport?status=final');
  expect(r.status).toBe(200);
  expect(r.body.entry ?? []).toEqual([]);
  const oldToken = await getAccessToken(old, SCOPES);
  const d = await fhirGet(old, '/DocumentReference?_lastUpdated=ge2000-01-01T00:00:00Z', oldToken);
  expect(d.status).toBe(200);
  expect(d.body.entry ?? []).toEqual([]);
  const all = await fhirGet(old, `/DocumentReference?patient=${uuidOf(documents[0]!.subject.reference)}`, oldToken);
  expect((all.body.entry ?? []).length).toBeGreaterThan(0);
});

test('an unknown DiagnosticReport id is 404 with body [], and a token without the type scope is refused', async () => {
  const res = await get('/DiagnosticReport/00000000-0000-0000-0000-000000000000');
  expect(res.status).toBe(404);
  expect(res.text).toBe('[]');
  const patientOnly = await getAccessToken(openemr, 'system/Patient.read');
  const denied = await fhirGet(openemr, `/DocumentReference/${documents[0]!.id}`, patientOnly);
  expect(denied.status).toBe(401);
});
