/**
 * A few resources shaped exactly as OpenEMR's services emit them, served beside the sample data
 * (option `openEmrShapes`, or POST /_control/openemr-shapes), so a client meets them in tests:
 * - a Patient whose narrative holds its names unescaped (FhirPatientService.php:267, `&` kept raw),
 *   with the `PT` and `SS` identifiers (:507) and `active` true;
 * - a vitals form exploded as OpenEMR does (FhirObservationVitalsService.php): the 85353-1 panel
 *   with `hasMember` (:797-806), units rewritten to `[lb_av]`/`[in_i]` (:853-860), blood pressure
 *   only as the 85354-9 panel with components, a missing value as `dataAbsentReason`, in a
 *   component too (:914, :1021);
 * - labs (FhirObservationLaboratoryService.php): no code or text gives NullFlavor UNK (:260), a
 *   local code still labelled LOINC (:255) with a free-text unit in a UCUM-labelled quantity, and a
 *   lab without report_date: `effectiveDateTime` is then the data-missing extension OBJECT
 *   (:238, UtilsService::createDataMissingExtension :163-174) — invalid FHIR JSON — its date column
 *   is NULL (never matched by _lastUpdated, never exported) and meta.lastUpdated is "now" (:221);
 * - reports of the sub-services the sample lacks: a lab DiagnosticReport
 *   (DiagnosticReport/FhirDiagnosticReportLaboratoryService.php parseOpenEMRRecord: category LAB of
 *   v2-0074, effectiveDateTime = issued = report_date, result -> the lab's Observation, LOINC
 *   standard_code), a clinical note with a Clinical_Note_Category (radiology, LOINC LP29684-5:
 *   DiagnosticReport/FhirDiagnosticReportClinicalNotesService.php, the note base64 in presentedForm),
 *   and a patient document (DocumentReference/FhirPatientDocumentReferenceService.php parseOpenEMRRecord
 *   with Trait/FhirDocumentReferenceTrait.php populateContent): no data, content.attachment.url =
 *   `{site_addr_oath}/apis/{site}/fhir/Binary/<documents.uuid>`, the mimeTypeSufficient format code,
 *   the document's name as title, a category of its category_name only, type NullFlavor UNK. (Their
 *   author/custodian/performer, the primary business Organization, are left out: nothing here holds it.)
 */
import type { FhirResource } from './resource-shape';

export const SHAPED_PATIENT_ID = 'e0e0e0e0-0000-4000-8000-000000000001';
const obsId = (n: number) => `e0e0e0e0-0000-4000-8000-0000000001${String(n).padStart(2, '0')}`;
export const SHAPED_IDS = {
  vitalsPanel: obsId(1),
  weight: obsId(2),
  height: obsId(3),
  bloodPressure: obsId(4),
  temperature: obsId(5),
  labNullFlavor: obsId(6),
  labLocalCode: obsId(7),
  labWithoutDate: obsId(8),
  labReport: `e0e0e0e0-0000-4000-8000-000000000201`,
  radiologyNote: `e0e0e0e0-0000-4000-8000-000000000202`,
  patientDocument: `e0e0e0e0-0000-4000-8000-000000000203`,
} as const;

const UCUM = 'http://unitsofmeasure.org';
const LOINC = 'http://loinc.org';
const subject = { reference: `Patient/${SHAPED_PATIENT_ID}`, type: 'Patient' };
const category = (code: string, display: string) => [
  { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code, display }] },
];
const loinc = (code: string, display: string) => ({ coding: [{ system: LOINC, code, display }] });
const dataAbsentUnknown = {
  coding: [{ system: 'http://terminology.hl7.org/CodeSystem/data-absent-reason', code: 'unknown', display: 'Unknown' }],
};
const VITALS_PROFILE = { profile: ['http://hl7.org/fhir/StructureDefinition/vitalsigns'] };
const LAB_PROFILE = { profile: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab'] };
const formDate = '2024-03-01T10:00:00-05:00';

const vital = (id: string, code: ReturnType<typeof loinc>, rest: Record<string, unknown>): FhirResource => ({
  id,
  meta: VITALS_PROFILE,
  resourceType: 'Observation',
  status: 'final',
  category: category('vital-signs', 'Vital Signs'),
  code,
  subject,
  effectiveDateTime: formDate,
  ...rest,
});

const lab = (id: string, rest: Record<string, unknown>): FhirResource => ({
  id,
  meta: LAB_PROFILE,
  resourceType: 'Observation',
  ...rest,
  category: category('laboratory', 'Laboratory'),
  subject,
});

/** The resources, and for each the date its row carries (null: a NULL column). `fhirApiUrl`: `{site_addr_oath}/apis/{site}/fhir`. */
export function openEmrShapedResources(opts: { fhirApiUrl: string }): Array<{ resource: FhirResource; lastUpdated?: null }> {
  const patient: FhirResource = {
    id: SHAPED_PATIENT_ID,
    meta: { profile: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'] },
    resourceType: 'Patient',
    text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml"> <p>Ann & Bo Smith</p></div>' },
    identifier: [
      {
        use: 'official',
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'PT' }] },
        system: 'http://terminology.hl7.org/CodeSystem/v2-0203',
        value: 'e0e0-1',
      },
      {
        use: 'official',
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'SS' }] },
        system: 'http://hl7.org/fhir/sid/us-ssn',
        value: '999-00-0001',
      },
    ],
    active: true,
    name: [{ use: 'official', family: 'Smith', given: ['Ann & Bo'] }],
    gender: 'female',
    birthDate: '1970-01-01',
  };
  const members: Array<[string, string]> = [
    [SHAPED_IDS.weight, 'Body weight'],
    [SHAPED_IDS.height, 'Body height'],
    [SHAPED_IDS.bloodPressure, 'Blood pressure systolic and diastolic'],
    [SHAPED_IDS.temperature, 'Body temperature'],
  ];
  const resources: FhirResource[] = [
    patient,
    vital(SHAPED_IDS.vitalsPanel, loinc('85353-1', 'Vital signs, weight, height, head circumference, oxygen saturation and BMI panel'), {
      hasMember: members.map(([id, display]) => ({ reference: `Observation/${id}`, type: 'Observation', display })),
    }),
    vital(SHAPED_IDS.weight, loinc('29463-7', 'Body weight'), {
      valueQuantity: { value: 146, unit: 'lb_av', system: UCUM, code: '[lb_av]' },
    }),
    vital(SHAPED_IDS.height, loinc('8302-2', 'Body height'), { valueQuantity: { value: 65, unit: 'in_i', system: UCUM, code: '[in_i]' } }),
    vital(SHAPED_IDS.bloodPressure, loinc('85354-9', 'Blood pressure systolic and diastolic'), {
      component: [
        { code: loinc('8480-6', 'Systolic blood pressure'), valueQuantity: { value: 122, unit: 'mm[Hg]', system: UCUM, code: 'mm[Hg]' } },
        { code: loinc('8462-4', 'Diastolic blood pressure'), dataAbsentReason: dataAbsentUnknown },
      ],
    }),
    vital(SHAPED_IDS.temperature, loinc('8310-5', 'Body temperature'), { dataAbsentReason: dataAbsentUnknown }),
    lab(SHAPED_IDS.labNullFlavor, {
      effectiveDateTime: formDate,
      code: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-NullFlavor', code: 'UNK', display: 'unknown' }] },
      status: 'final',
      valueString: 'See scanned report',
    }),
    lab(SHAPED_IDS.labLocalCode, {
      effectiveDateTime: formDate,
      code: { coding: [{ system: LOINC, code: 'GLU-LOCAL', display: 'Glucose (local)' }] },
      status: 'final',
      valueQuantity: { value: 105, unit: 'milligrams per deciliter', system: UCUM, code: 'milligrams per deciliter' },
    }),
    lab(SHAPED_IDS.labWithoutDate, {
      effectiveDateTime: { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'unknown' }] },
      code: loinc('2345-7', 'Glucose [Mass/volume] in Serum or Plasma'),
      status: 'preliminary',
      valueQuantity: { value: 99, unit: 'mg/dL', system: UCUM, code: 'mg/dL' },
    }),
  ];
  resources.push(...reports(opts.fhirApiUrl));
  return resources.map((resource) => (resource.id === SHAPED_IDS.labWithoutDate ? { resource, lastUpdated: null } : { resource }));
}

function reports(fhirApiUrl: string): FhirResource[] {
  const nullFlavorUnknown = {
    coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-NullFlavor', code: 'UNK', display: 'unknown' }],
  };
  const labReport: FhirResource = {
    id: SHAPED_IDS.labReport,
    meta: { profile: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-diagnosticreport-lab'] },
    resourceType: 'DiagnosticReport',
    effectiveDateTime: formDate,
    issued: formDate,
    result: [{ reference: `Observation/${SHAPED_IDS.labLocalCode}`, type: 'Observation' }],
    subject,
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'LAB', display: 'Laboratory' }] }],
    status: 'final',
    code: loinc('2345-7', 'Glucose [Mass/volume] in Serum or Plasma'),
  };
  const radiologyNote: FhirResource = {
    id: SHAPED_IDS.radiologyNote,
    meta: { profile: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-diagnosticreport-note'] },
    resourceType: 'DiagnosticReport',
    effectiveDateTime: formDate,
    issued: formDate,
    presentedForm: [{ contentType: 'text/plain', data: Buffer.from('Chest X-ray: no acute findings.').toString('base64') }],
    subject,
    category: [loinc('LP29684-5', 'Radiology')],
    status: 'final',
    code: loinc('18748-4', 'Diagnostic imaging study'),
  };
  const patientDocument: FhirResource = {
    id: SHAPED_IDS.patientDocument,
    resourceType: 'DocumentReference',
    identifier: [{ value: SHAPED_IDS.patientDocument }],
    date: formDate,
    content: [
      {
        attachment: {
          contentType: 'application/pdf',
          url: `${fhirApiUrl}/Binary/${SHAPED_IDS.patientDocument}`,
          title: 'outside-records.pdf',
        },
        format: {
          system: 'http://ihe.net/fhir/ValueSet/IHE.FormatCode.codesystem',
          code: 'urn:ihe:iti:xds:2017:mimeTypeSufficient',
          display: 'mimeType Sufficient',
        },
      },
    ],
    subject,
    category: [{ text: 'Medical Record' }],
    status: 'current',
    type: nullFlavorUnknown,
  };
  return [labReport, radiologyNote, patientDocument];
}
