/**
 * `category` of DiagnosticReport and DocumentReference routes to ONE sub-service, as OpenEMR does
 * (royharden/openemr src/Services/FHIR/FhirDiagnosticReportService.php and
 * FhirDocumentReferenceService.php getAll -> Traits/MappedServiceCodeTrait.php getServiceForCategory:
 * the first value whose code a sub-service supportsCategory() picks the first such sub-service; none
 * is a SearchFieldException, which the REST controller's getAll answers with an empty bundle):
 * - DiagnosticReport: DiagnosticReport/FhirDiagnosticReportClinicalNotesService.php supports the
 *   Clinical_Note_Category options (sql/database.sql: LP29708-2, LP7839-6, LP29684-5) and compares
 *   category_code; DiagnosticReport/FhirDiagnosticReportLaboratoryService.php supports `LAB` and
 *   ignores category;
 * - DocumentReference: DocumentReference/FhirClinicalNotesService.php supports `clinical-note`,
 *   FhirPatientDocumentReferenceService.php every code that is not a DocumentReferenceCategoryEnum
 *   case, FhirDocumentReferenceAdvanceCareDirectiveService.php `42348-3`; all three unset category
 *   before searching.
 * Without `category`, searchAllServices (Traits/MappedServiceTrait.php) concatenates the
 * sub-services in their addMappedService order. The sample holds clinical notes only (its reports'
 * category, 34117-2, is no Clinical_Note_Category): the other sub-services' rows are the
 * OpenEMR-shaped ones (stack/openemr/openemr-shapes.ts, option openEmrShapes). A patient document
 * carries a url into OpenEMR's Binary route (Trait/FhirDocumentReferenceTrait.php populateContent);
 * openemr-patient-documents.test.ts follows it through the connector.
 */
import fs from 'node:fs';
import path from 'node:path';
import { OpenEmrStandIn, SHAPED_IDS, SHAPED_PATIENT_ID, startOpenEmrStandIn } from '../../stack/openemr';
import { entryIds, fhirGet, getAccessToken } from '../helpers/openemr-standin-client';

type Json = Record<string, any>;
const DATA = path.resolve(__dirname, '../..', 'data/synthea-dev');
const readNdjson = (file: string): Json[] =>
  fs
    .readFileSync(path.join(DATA, file), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Json);
const reports = readNdjson('DiagnosticReport.ndjson');
const documents = readNdjson('DocumentReference.ndjson');
const SCOPES = 'system/Patient.read system/DiagnosticReport.read system/DocumentReference.read';
const sorted = (ids: string[]) => [...ids].sort();

/** The sample with the OpenEMR-shaped lab report, radiology note and patient document beside it. */
let shaped: OpenEmrStandIn;
let shapedToken: string;

beforeAll(async () => {
  shaped = await startOpenEmrStandIn({ openEmrShapes: true });
  shapedToken = await getAccessToken(shaped, SCOPES);
}, 60_000);
afterAll(() => shaped?.close());

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
