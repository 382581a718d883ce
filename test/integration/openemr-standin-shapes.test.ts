/**
 * OpenEMR-shaped resources served beside the sample data (stack/openemr/openemr-shapes.ts), each
 * written from the OpenEMR service that emits it.
 */
import { OpenEmrStandIn, SHAPED_IDS, SHAPED_PATIENT_ID, startOpenEmrStandIn } from '../../stack/openemr';
import { control, entryIds, fhirGet, getAccessToken } from '../helpers/openemr-standin-client';

let s: OpenEmrStandIn;
let token: string;
beforeAll(async () => {
  s = await startOpenEmrStandIn({ dataDir: null, openEmrShapes: true });
  token = await getAccessToken(s);
});
afterAll(() => s.close());

const read = async (id: string) => (await fhirGet(s, `/Observation/${id}`, token)).body;

// FhirPatientService.php:267 concatenates fname and lname into the div unescaped; :507 SS identifier.
test('the Patient narrative holds its names unescaped, beside PT and SS identifiers', async () => {
  const res = await fhirGet(s, `/Patient/${SHAPED_PATIENT_ID}`, token);
  expect(res.body.text.div).toBe('<div xmlns="http://www.w3.org/1999/xhtml"> <p>Ann & Bo Smith</p></div>');
  expect(res.body.identifier.map((i: { type: { coding: Array<{ code: string }> } }) => i.type.coding[0].code)).toEqual(['PT', 'SS']);
  expect(res.body.active).toBe(true);
});

// FhirObservationVitalsService.php:797-806 (hasMember), :853-860 (units), :914/:1021 (dataAbsentReason).
test('a vitals form comes as the 85353-1 panel with hasMember, rewritten units and BP components with a data-absent reason', async () => {
  const panel = await read(SHAPED_IDS.vitalsPanel);
  expect(panel.code.coding[0].code).toBe('85353-1');
  expect(panel.hasMember.map((m: { reference: string }) => m.reference)).toEqual(
    [SHAPED_IDS.weight, SHAPED_IDS.height, SHAPED_IDS.bloodPressure, SHAPED_IDS.temperature].map((id) => `Observation/${id}`),
  );
  expect((await read(SHAPED_IDS.weight)).valueQuantity).toEqual({
    value: 146,
    unit: 'lb_av',
    system: 'http://unitsofmeasure.org',
    code: '[lb_av]',
  });
  const bp = await read(SHAPED_IDS.bloodPressure);
  expect(bp.valueQuantity).toBeUndefined();
  expect(bp.component.map((c: { code: { coding: Array<{ code: string }> } }) => c.code.coding[0].code)).toEqual(['8480-6', '8462-4']);
  expect(bp.component[1].dataAbsentReason.coding[0].code).toBe('unknown');
  expect((await read(SHAPED_IDS.temperature)).dataAbsentReason.coding[0].code).toBe('unknown');
});

// FhirObservationLaboratoryService.php:255 (LOINC label), :260 (NullFlavor UNK).
test('labs: no code gives NullFlavor UNK, a local code is still labelled LOINC with a free-text unit', async () => {
  expect((await read(SHAPED_IDS.labNullFlavor)).code.coding[0]).toMatchObject({
    system: 'http://terminology.hl7.org/CodeSystem/v3-NullFlavor',
    code: 'UNK',
  });
  const local = await read(SHAPED_IDS.labLocalCode);
  expect(local.code.coding[0]).toMatchObject({ system: 'http://loinc.org', code: 'GLU-LOCAL' });
  expect(local.valueQuantity.code).toBe('milligrams per deciliter');
});

// FhirObservationLaboratoryService.php:221,238 and UtilsService::createDataMissingExtension (:163-174).
test('a lab without report date has the data-absent object in effectiveDateTime and a NULL date column', async () => {
  const undated = await read(SHAPED_IDS.labWithoutDate);
  expect(undated.effectiveDateTime).toEqual({
    extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'unknown' }],
  });
  const byPatient = entryIds((await fhirGet(s, `/Observation?patient=${SHAPED_PATIENT_ID}`, token)).body);
  expect(byPatient).toContain(SHAPED_IDS.labWithoutDate);
  const byDate = entryIds((await fhirGet(s, '/Observation?_lastUpdated=ge1970-01-01', token)).body);
  expect(byDate).not.toContain(SHAPED_IDS.labWithoutDate);
  expect(byDate).toHaveLength(7);
});

test('the control API adds the same resources to a running stand-in', async () => {
  const other = await startOpenEmrStandIn({ dataDir: null });
  try {
    expect((await control(other, 'POST', '/openemr-shapes')).body).toEqual({ added: 12 });
    expect(other.store.count('Observation')).toBe(8);
  } finally {
    await other.close();
  }
});
