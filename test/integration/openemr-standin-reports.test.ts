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
import { defaultDirectoryDir, type OpenEmrStandIn } from '../../stack/openemr';
import { readNdjson } from '../fixtures/mapping/load';
import { startTypeStandIns, type TypeStandIns } from '../helpers/carried-types';
import { entryIds, fhirGet, getAccessToken } from '../helpers/openemr-standin-client';

const DATA = path.resolve(__dirname, '../..', 'data/synthea-dev');
type Json = Record<string, any>;
const reports = readNdjson<Json>(path.join(DATA, 'DiagnosticReport.ndjson'));
const documents = readNdjson<Json>(path.join(DATA, 'DocumentReference.ndjson'));
/** Synthea conditional reference -> the directory row it stands for (data/openemr-directory). */
const links = JSON.parse(fs.readFileSync(path.join(defaultDirectoryDir(), 'links.json'), 'utf8')) as Record<string, string>;
const uuidOf = (ref: string) => ref.replace('urn:uuid:', '');

let standIns: TypeStandIns;
let openemr: OpenEmrStandIn;
/** 7.0.2, before `_lastUpdated` was honoured. */
let getOld: TypeStandIns['getBeside'];

beforeAll(async () => {
  standIns = await startTypeStandIns(['Patient', 'DiagnosticReport', 'DocumentReference'], { version: '7.0.2' });
  ({ openemr, getBeside: getOld } = standIns);
}, 60_000);
afterAll(() => standIns?.close());

const get = (p: string) => standIns.get(p);
const sorted = (ids: string[]) => [...ids].sort();

test('every sample DiagnosticReport and DocumentReference is loaded', () => {
  expect(openemr.store.count('DiagnosticReport')).toBe(reports.length);
  expect(openemr.store.count('DocumentReference')).toBe(documents.length);
  expect(reports.length).toBe(968);
});

test('a DiagnosticReport points at Patient/<id>, Encounter/<id> and its author as performer, keeps its note inline, and has no conditional reference left', async () => {
  const source = reports[0]!;
  const res = await get(`/DiagnosticReport/${source.id}`);
  expect(res.status).toBe(200);
  expect(res.body.subject).toEqual({ reference: `Patient/${uuidOf(source.subject.reference)}` });
  expect(res.body.encounter).toEqual({ reference: `Encounter/${uuidOf(source.encounter.reference)}` });
  expect(res.body.presentedForm).toEqual(source.presentedForm);
  // FhirDiagnosticReportClinicalNotesService.php:128-136: performer is Practitioner/<the note's user>.
  expect(res.body.performer.map((p: Json) => p.reference)).toEqual(source.performer.map((p: Json) => links[p.reference]));
  expect(res.text).not.toContain('urn:uuid:');
  expect(res.text).not.toContain('?identifier=');
});

test('a DocumentReference points at its Encounter through context.encounter, its author and an Organization as custodian, and keeps its attachment data', async () => {
  const source = documents[0]!;
  const res = await get(`/DocumentReference/${source.id}`);
  expect(res.body.subject).toEqual({ reference: `Patient/${uuidOf(source.subject.reference)}` });
  expect(res.body.context.encounter).toEqual([{ reference: `Encounter/${uuidOf(source.context.encounter[0].reference)}` }]);
  expect(res.body.content).toEqual(source.content);
  // DocumentReference/FhirClinicalNotesService.php:153-158: author Practitioner/<user>, custodian an Organization.
  expect(res.body.author.map((a: Json) => a.reference)).toEqual(source.author.map((a: Json) => links[a.reference]));
  expect(res.body.custodian.reference).toMatch(/^Organization\//);
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
  const d = await getOld('/DocumentReference?_lastUpdated=ge2000-01-01T00:00:00Z');
  expect(d.status).toBe(200);
  expect(d.body.entry ?? []).toEqual([]);
  const all = await getOld(`/DocumentReference?patient=${uuidOf(documents[0]!.subject.reference)}`);
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
