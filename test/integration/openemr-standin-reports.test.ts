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
 *
 * `category` routes to ONE sub-service (FhirDiagnosticReportService.php / FhirDocumentReferenceService.php
 * getAll -> Traits/MappedServiceCodeTrait.php getServiceForCategory: the first value whose code a
 * sub-service supportsCategory() picks the first such sub-service; none is a SearchFieldException,
 * which the REST controller's getAll answers with an empty bundle):
 * - DiagnosticReport: FhirDiagnosticReportClinicalNotesService supports the Clinical_Note_Category
 *   options (sql/database.sql: LP29708-2, LP7839-6, LP29684-5) and compares category_code;
 *   FhirDiagnosticReportLaboratoryService supports `LAB` and ignores category;
 * - DocumentReference: FhirClinicalNotesService supports `clinical-note`, FhirPatientDocumentReferenceService
 *   every code that is not a DocumentReferenceCategoryEnum case, FhirDocumentReferenceAdvanceCareDirectiveService
 *   `42348-3`; all three unset category before searching.
 * Without `category`, searchAllServices concatenates the sub-services in their addMappedService order.
 * The sample holds clinical notes only: the other sub-services' rows are the OpenEMR-shaped ones
 * (openemr-shapes.ts, option openEmrShapes).
 */
import fs from 'node:fs';
import path from 'node:path';
import { OpenEmrStandIn, SHAPED_IDS, SHAPED_PATIENT_ID, startOpenEmrStandIn } from '../../stack/openemr';
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
/** The sample with the OpenEMR-shaped lab report, radiology note and patient document beside it. */
let shaped: OpenEmrStandIn;
let token: string;
let shapedToken: string;

beforeAll(async () => {
  openemr = await startOpenEmrStandIn();
  old = await startOpenEmrStandIn({ version: '7.0.2' });
  shaped = await startOpenEmrStandIn({ openEmrShapes: true });
  token = await getAccessToken(openemr, SCOPES);
  shapedToken = await getAccessToken(shaped, SCOPES);
}, 60_000);
afterAll(async () => {
  await openemr?.close();
  await old?.close();
  await shaped?.close();
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

describe('category asks one sub-service', () => {
  const shapedGet = (p: string) => fhirGet(shaped, p, shapedToken);
  const ids = async (p: string) => {
    const res = await shapedGet(p);
    expect(res.status).toBe(200);
    return entryIds(res.body);
  };
  const sampleNoteIds = sorted(documents.map((x) => x.id));

  test('DiagnosticReport: LAB asks the laboratory service, a Clinical_Note_Category the clinical notes compared by category_code', async () => {
    expect(await ids('/DiagnosticReport?category=LAB')).toEqual([SHAPED_IDS.labReport]);
    expect(await ids('/DiagnosticReport?category=http://terminology.hl7.org/CodeSystem/v2-0074|LAB')).toEqual([SHAPED_IDS.labReport]);
    expect(await ids('/DiagnosticReport?category=LP29684-5')).toEqual([SHAPED_IDS.radiologyNote]);
    // Cardiology is a clinical-notes category, and no note has it.
    expect(await ids('/DiagnosticReport?category=LP29708-2')).toEqual([]);
  });

  test("DiagnosticReport: a category no sub-service supports (the sample's own 34117-2) answers an empty bundle; the first supported value picks", async () => {
    expect(reports.every((x) => x.category[0].coding[0].code === '34117-2')).toBe(true);
    expect(await ids('/DiagnosticReport?category=34117-2')).toEqual([]);
    expect(await ids('/DiagnosticReport?category=34117-2,LAB')).toEqual([SHAPED_IDS.labReport]);
    // The first supported value picks the clinical notes, which then compare every value's code.
    expect(sorted(await ids('/DiagnosticReport?category=LP29684-5,LAB'))).toEqual([SHAPED_IDS.radiologyNote]);
  });

  test('DocumentReference: clinical-note asks the clinical notes, any other code the patient documents (which do not compare it), 42348-3 the advance directives', async () => {
    expect(sorted(await ids('/DocumentReference?category=clinical-note'))).toEqual(sampleNoteIds);
    expect(await ids('/DocumentReference?category=no-such-category')).toEqual([SHAPED_IDS.patientDocument]);
    expect(await ids(`/DocumentReference?category=${encodeURIComponent('http://loinc.org|42348-3')}`)).toEqual([]);
  });

  test('without category every sub-service answers, in mapped order: clinical notes before labs, notes before patient documents', async () => {
    expect(await ids(`/DiagnosticReport?patient=${SHAPED_PATIENT_ID}`)).toEqual([SHAPED_IDS.radiologyNote, SHAPED_IDS.labReport]);
    const all = await ids('/DocumentReference');
    expect(all.length).toBe(documents.length + 1);
    expect(all.at(-1)).toBe(SHAPED_IDS.patientDocument);
  });

  test('a patient document carries a url to the Binary route on site_addr_oath and no data', async () => {
    const res = await shapedGet(`/DocumentReference/${SHAPED_IDS.patientDocument}`);
    const attachment = res.body.content[0].attachment;
    expect(attachment.url).toBe(`${shaped.siteAddrOath}/apis/${shaped.site}/fhir/Binary/${SHAPED_IDS.patientDocument}`);
    expect(attachment.data).toBeUndefined();
    const proxied = await startOpenEmrStandIn({ dataDir: null, openEmrShapes: true, siteAddrOath: 'https://emr.example.org' });
    try {
      expect(proxied.store.get('DocumentReference', SHAPED_IDS.patientDocument)?.content).toEqual([
        expect.objectContaining({
          attachment: expect.objectContaining({ url: `https://emr.example.org/apis/default/fhir/Binary/${SHAPED_IDS.patientDocument}` }),
        }),
      ]);
    } finally {
      await proxied.close();
    }
  });
});
