/**
 * Validation parity: the connector refuses what AHDS refuses (fhir-server: Firely's parser,
 * ResourceContentValidator with recurse: false, NarrativeHtmlSanitizer) plus codes outside the
 * required value sets it maps, and no more. Differential over thousands of broken variants of real
 * resources, against Medplum's full validator (the old judge) and the AHDS stand-in over HTTP.
 */
import type { Observation, Patient, Resource } from '@medplum/fhirtypes';
import { createResourceMapper } from '../../src/mapping';
import { ensureDefinitionsIndexed, validationFailure } from '../../src/mapping/validate';
import { startAhdsStandIn, type AhdsStandIn } from '../../stack/ahds';
import { validate as standInRefuses } from '../../stack/ahds/engine';
import { DEFAULT_OPTIONS, sampleObservations, samplePatients } from '../fixtures/mapping/load';
import { baseResources, medplumAccepts, mutantsOf } from '../fixtures/mapping/mutants';
import { ahdsClient } from '../helpers/ahds-client';

jest.setTimeout(300_000);

let ahds: AhdsStandIn;
beforeAll(async () => {
  ensureDefinitionsIndexed('all');
  ahds = await startAhdsStandIn({ requireAuth: false });
});
afterAll(() => ahds?.close());

/** Every third variant: the full set runs in the fast-validation test; this keeps the suite quick. */
function variants(): Resource[] {
  return baseResources()
    .flatMap((b) => mutantsOf(b))
    .filter((_, i) => i % 3 === 0);
}

const REQUIRED_BINDING = /required value set/;

describe('validation parity with AHDS', () => {
  test('resources only Medplum refused now flow; everything the AHDS stand-in refuses is caught first', () => {
    let onlyMedplum = 0;
    let caught = 0;
    const missed: string[] = [];
    const extra: string[] = [];
    for (const v of variants()) {
      const connector = validationFailure(v);
      const standIn = standInRefuses(v);
      if (standIn && !connector) missed.push(JSON.stringify(v).slice(0, 200));
      if (standIn && connector) caught++;
      // The connector refuses beyond AHDS only for the required value sets it maps.
      if (!standIn && connector && !REQUIRED_BINDING.test(connector)) extra.push(connector);
      if (!connector && !medplumAccepts(v)) onlyMedplum++;
    }
    expect(missed).toEqual([]);
    expect(extra).toEqual([]);
    // Teeth: many variants are refused by AHDS (and caught), many only Medplum refused now pass.
    expect(caught).toBeGreaterThan(1000);
    expect(onlyMedplum).toBeGreaterThan(100);
  });

  test('what the connector passes, the stand-in stores over HTTP (a sample of variants)', async () => {
    const c = await ahdsClient(ahds);
    const sample = variants().filter(
      (v, i) =>
        i % 20 === 0 &&
        typeof v.id === 'string' &&
        /^[A-Za-z0-9.-]{1,64}$/.test(v.id) &&
        (v.resourceType === 'Patient' || v.resourceType === 'Observation'),
    );
    let stored = 0;
    let refused = 0;
    for (const v of sample) {
      const res = await c.put({ ...v, id: `par-${stored + refused}` } as Resource);
      const connector = validationFailure({ ...v, id: `par-${stored + refused}` } as Resource);
      if (res.status >= 400) {
        refused++;
        expect(connector).toBeDefined();
      } else stored++;
    }
    expect(stored).toBeGreaterThan(20);
    expect(refused).toBeGreaterThan(20);
  });

  test('named cases Medplum refused that AHDS stores are written: nested cardinality, formats and invariants', async () => {
    const mapper = createResourceMapper(DEFAULT_OPTIONS);
    const obs = sampleObservations()[0]!;
    const cases: Resource[] = [
      { ...obs, id: 'mo-1', component: [{ valueQuantity: { value: 1 } }] } as unknown as Observation, // component.code 1..1
      { ...obs, id: 'mo-2', effectiveDateTime: undefined, effectivePeriod: { start: 'yesterday' } } as unknown as Observation,
      { ...samplePatients()[0]!, id: 'mp-3', contact: [{ gender: 'male' }] } as unknown as Patient, // pat-1: a contact needs a detail
    ];
    for (const source of cases) {
      const out = mapper.map(source as Observation);
      expect(out.ok).toBe(true);
      expect(medplumAccepts((out as { resource: Resource }).resource)).toBe(false);
      const c = await ahdsClient(ahds);
      const res = await c.put((out as { resource: Resource }).resource);
      expect(res.status).toBe(201);
    }
    // The strict setting still refuses them.
    const strict = createResourceMapper({ ...DEFAULT_OPTIONS, validation: 'strict' });
    for (const source of cases) expect(strict.map(source as Observation).ok).toBe(false);
  });

  test('an unsafe narrative is replaced by its escaped text, deterministically, and AHDS stores it', async () => {
    const mapper = createResourceMapper(DEFAULT_OPTIONS);
    const patient = {
      ...samplePatients()[0]!,
      id: 'mn-1',
      text: {
        status: 'generated',
        div: '<div xmlns="http://www.w3.org/1999/xhtml"><p onclick="steal()">Ann &amp; Bo</p><script>alert(1)</script><a href="javascript:x()">link</a></div>',
      },
    } as Patient;
    const first = mapper.map(patient);
    const again = mapper.map(patient);
    expect(first).toEqual(again);
    const out = (first as { resource: Patient }).resource;
    expect(out.text).toEqual({ status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Ann &amp; Bo link</div>' });
    const c = await ahdsClient(ahds);
    expect((await c.put(out)).status).toBe(201);
    // As sent, the stand-in (AHDS's sanitizer) refuses the original.
    expect((await c.put({ ...out, text: patient.text } as Resource)).status).toBe(400);
    // A narrative of nothing but markup is dropped (Patient.text is optional).
    const empty = mapper.map({ ...patient, text: { status: 'generated', div: '<div><script>x</script></div>' } } as Patient);
    expect((empty as { resource: Patient }).resource.text).toBeUndefined();
    // A safe narrative is kept as it is.
    const safe = { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml"><p>Ann <b>Bo</b></p></div>' };
    expect((mapper.map({ ...patient, text: safe } as Patient) as { resource: Patient }).resource.text).toEqual(safe);
  });
});
