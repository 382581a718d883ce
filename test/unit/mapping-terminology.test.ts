import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle, CodeableConcept, Coding, Observation } from '@medplum/fhirtypes';
import { canonicalJson } from '../../src/fhir/canonical';
import {
  CIEL,
  createResourceMapper,
  isValidLoinc,
  isValidSnomedId,
  LOINC,
  readConceptMap,
  shippedMapFiles,
  SNOMED,
  toUcum,
  UCUM,
  US_CORE_VITAL_SIGNS,
  type MapOutcome,
  type ResourceMapper,
} from '../../src/mapping';
import { ciel, DEFAULT_OPTIONS, openemrExample, sampleObservations, samplePatients } from '../fixtures/mapping/load';

const CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
let mapper: ResourceMapper;
beforeAll(() => {
  mapper = createResourceMapper(DEFAULT_OPTIONS);
});

function ok(outcome: MapOutcome): Extract<MapOutcome, { ok: true }> {
  if (!outcome.ok) throw new Error(`expected ok, got: ${outcome.reason}`);
  return outcome;
}
const mapObs = (o: Observation) => {
  const out = ok(mapper.map(o));
  return { obs: out.resource as Observation, unmapped: out.unmapped };
};
const codings = (cc: CodeableConcept | undefined): Coding[] => cc?.coding ?? [];
const hasCoding = (cc: CodeableConcept | undefined, system: string, code: string) =>
  codings(cc).some((c) => c.system === system && c.code === code);
function sampleWith(cielId: number): Observation {
  const o = sampleObservations().find((x) => x.code.coding?.[0]?.code === ciel(cielId));
  if (!o) throw new Error(`no sample observation with CIEL ${cielId}`);
  return o;
}
/** A sample weight observation re-coded to another CIEL concept (for vitals the sample lacks). */
function recoded(cielId: number, unit: string): Observation {
  const base = sampleWith(5089);
  return {
    ...base,
    code: { coding: [{ system: LOINC, code: ciel(cielId), display: 'x' }] },
    valueQuantity: { value: 42, unit, system: UCUM, code: unit },
  };
}

describe('ConceptMap-driven mapping', () => {
  test('CIEL body weight gains LOINC 29463-7 and keeps the CIEL coding', () => {
    const { obs, unmapped } = mapObs(sampleWith(5089));
    expect(hasCoding(obs.code, LOINC, '29463-7')).toBe(true);
    expect(hasCoding(obs.code, CIEL, ciel(5089))).toBe(true);
    expect(hasCoding(obs.code, LOINC, ciel(5089))).toBe(false);
    expect(obs.code.coding?.[0]).toEqual({ system: CIEL, code: ciel(5089), display: 'Weight' });
    expect(unmapped).toEqual([]);
  });

  test.each([
    ['CIEL systolic blood pressure gains LOINC 8480-6 and keeps the CIEL coding', 5085, '8480-6', undefined],
    ['CIEL diastolic blood pressure gains LOINC 8462-4 and keeps the CIEL coding', 5086, '8462-4', 'mmHg'],
    ['CIEL pulse gains LOINC 8867-4 and keeps the CIEL coding', 5087, '8867-4', undefined],
    ['CIEL temperature gains LOINC 8310-5 and keeps the CIEL coding', 5088, '8310-5', undefined],
    ['CIEL height gains LOINC 8302-2 and keeps the CIEL coding', 5090, '8302-2', undefined],
    ['CIEL oxygen saturation gains LOINC 59408-5 (and 2708-6) and keeps the CIEL coding', 5092, '59408-5', undefined],
    ['CIEL respiratory rate gains LOINC 9279-1 and keeps the CIEL coding', 5242, '9279-1', '/min'],
    ['CIEL body mass index gains LOINC 39156-5 and keeps the CIEL coding', 1342, '39156-5', 'kg/m2'],
    ['CIEL HIV viral load gains LOINC 25836-8 and keeps the CIEL coding', 856, '25836-8', undefined],
  ])('%s', (_name, id, loinc, unit) => {
    const input = unit === undefined ? sampleWith(id) : recoded(id, unit);
    const { obs, unmapped } = mapObs(input);
    expect(hasCoding(obs.code, LOINC, loinc)).toBe(true);
    expect(hasCoding(obs.code, CIEL, ciel(id))).toBe(true);
    if (id === 5092) expect(hasCoding(obs.code, LOINC, '2708-6')).toBe(true);
    expect(unmapped).toEqual([]);
  });

  test('CIEL answers mislabelled SNOMED CT are re-labelled to CIEL and reported unmapped', () => {
    const input = sampleObservations().find((o) => o.valueCodeableConcept?.coding?.[0]?.code === ciel(1107))!;
    const { obs, unmapped } = mapObs(input);
    expect(hasCoding(obs.valueCodeableConcept, CIEL, ciel(1107))).toBe(true);
    expect(codings(obs.valueCodeableConcept).some((c) => c.system === SNOMED)).toBe(false);
    expect(unmapped).toContainEqual({ system: CIEL, code: ciel(1107), display: 'None' });
  });

  test('no coding labelled LOINC in the mapped sample data fails the check digit', () => {
    const bad: string[] = [];
    let loincCodings = 0;
    const visit = (v: unknown): void => {
      if (Array.isArray(v)) return v.forEach(visit);
      if (!v || typeof v !== 'object') return;
      const o = v as Record<string, unknown>;
      if (o.system === LOINC && typeof o.code === 'string') {
        loincCodings++;
        if (!isValidLoinc(o.code)) bad.push(o.code);
      }
      if (o.system === SNOMED && typeof o.code === 'string' && !isValidSnomedId(o.code)) bad.push(o.code);
      Object.values(o).forEach(visit);
    };
    for (const r of [...samplePatients(), ...sampleObservations()]) visit(ok(mapper.map(r)).resource);
    expect(bad).toEqual([]);
    expect(loincCodings).toBeGreaterThan(300);
  });

  test('a LOINC-labelled local lab code is re-labelled to the local system and reported unmapped', () => {
    const lab = openemrExample<Observation>('synthesized/observation-lab.SYNTHESIZED.json');
    // As shipped the example carries 5767-9, which is real LOINC (check digit 9): it stays LOINC.
    expect(isValidLoinc('5767-9')).toBe(true);
    const real = mapObs(lab);
    expect(real.obs.code.coding).toEqual(lab.code.coding);
    expect(real.unmapped).toEqual([]);
    // OpenEMR labels its site-local lab codes http://loinc.org too: a local code, and a LOINC-shaped
    // code with a wrong check digit, are both re-labelled and reported.
    for (const code of ['UA-APPEAR', '5767-8']) {
      const local = { ...lab, code: { coding: [{ system: LOINC, code, display: 'Appearance of Urine' }] } };
      const { obs, unmapped } = mapObs(local);
      expect(obs.code.coding).toEqual([{ system: 'urn:openemr:local-code', code, display: 'Appearance of Urine' }]);
      expect(unmapped).toEqual([{ system: 'urn:openemr:local-code', code, display: 'Appearance of Urine' }]);
    }
  });

  test('a user map for the local system maps a re-labelled OpenEMR lab code to LOINC', () => {
    const lab = openemrExample<Observation>('synthesized/observation-lab.SYNTHESIZED.json');
    const m = createResourceMapper({
      ...DEFAULT_OPTIONS,
      conceptMapFiles: [join(__dirname, '../../mappings/examples/openemr-local-lab.example.json')],
    });
    const out = ok(m.map({ ...lab, code: { coding: [{ system: LOINC, code: 'UA-APPEAR' }] } }));
    const obs = out.resource as Observation;
    expect(obs.code.coding).toEqual([
      { system: 'urn:openemr:local-code', code: 'UA-APPEAR' },
      { system: LOINC, code: '5767-9', display: 'Appearance of Urine' },
    ]);
    expect(out.unmapped).toEqual([]);
  });

  test('every target code in the shipped maps passes its system check', () => {
    const files = shippedMapFiles();
    expect(files.length).toBeGreaterThanOrEqual(2);
    let targets = 0;
    for (const file of files) {
      const map = readConceptMap(file);
      expect(map.url).toBeTruthy();
      expect(map.version).toBeTruthy();
      expect(map.name).toBeTruthy();
      const raw = JSON.parse(readFileSync(file, 'utf8')) as { description?: string; status?: string };
      expect(raw.description).toMatch(/CIEL/);
      expect(raw.status).toBe('active');
      for (const g of map.group) {
        for (const e of g.element) {
          for (const t of e.target ?? []) {
            if (!t.code) continue;
            targets++;
            if (g.target === LOINC) expect([t.code, isValidLoinc(t.code)]).toEqual([t.code, true]);
            if (g.target === SNOMED) expect([t.code, isValidSnomedId(t.code)]).toEqual([t.code, true]);
          }
        }
      }
    }
    expect(targets).toBeGreaterThanOrEqual(10);
  });

  test('a user ConceptMap with an invalid LOINC target is refused at creation', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mapping-'));
    try {
      const file = join(dir, 'bad.json');
      writeFileSync(
        file,
        JSON.stringify({
          resourceType: 'ConceptMap',
          url: 'urn:test:bad',
          status: 'draft',
          group: [
            { source: 'urn:test:local', target: LOINC, element: [{ code: 'X', target: [{ code: '1234-5', equivalence: 'equivalent' }] }] },
          ],
        }),
      );
      expect(() => createResourceMapper({ ...DEFAULT_OPTIONS, conceptMapFiles: [file] })).toThrow(/not a valid http:\/\/loinc.org code/);
      expect(() => createResourceMapper({ ...DEFAULT_OPTIONS, conceptMapFiles: [join(dir, 'missing.json')] })).toThrow(/file not found/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a re-map after adding a ConceptMap entry changes exactly the affected resources', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mapping-'));
    try {
      const file = join(dir, 'extra.json');
      writeFileSync(
        file,
        JSON.stringify({
          resourceType: 'ConceptMap',
          url: 'urn:test:extra',
          version: '1',
          name: 'Extra',
          status: 'draft',
          group: [
            {
              source: CIEL,
              target: LOINC,
              element: [
                {
                  code: ciel(1030),
                  target: [
                    {
                      code: '44871-2',
                      display: 'HIV 1 proviral DNA [Presence] in Blood by NAA with probe amplification',
                      equivalence: 'equivalent',
                    },
                  ],
                },
              ],
            },
          ],
        }),
      );
      const before = createResourceMapper(DEFAULT_OPTIONS);
      const after = createResourceMapper({ ...DEFAULT_OPTIONS, conceptMapFiles: [file] });
      const changed: string[] = [];
      const expected: string[] = [];
      for (const r of [...samplePatients(), ...sampleObservations()]) {
        const a = ok(before.map(r));
        const b = ok(after.map(r));
        if (canonicalJson(a.resource) !== canonicalJson(b.resource)) changed.push(r.id!);
        if (JSON.stringify(r).includes(ciel(1030))) expected.push(r.id!);
        if (canonicalJson(a.resource) !== canonicalJson(b.resource)) {
          expect(a.unmapped.some((u) => u.code === ciel(1030))).toBe(true);
          expect(b.unmapped.some((u) => u.code === ciel(1030))).toBe(false);
        }
      }
      expect(expected.length).toBeGreaterThan(50);
      expect(changed).toEqual(expected);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('units', () => {
  test('[lb_av] stays UCUM, a free-text unit moves to unit', () => {
    const weight = openemrExample<Bundle>('synthesized/bundle-observation-search-as-emitted.SYNTHESIZED.json').entry![0]!
      .resource as Observation;
    expect(mapObs(weight).obs.valueQuantity).toEqual({ value: 146, unit: 'lb_av', system: UCUM, code: '[lb_av]' });

    const lab = openemrExample<Observation>('synthesized/observation-lab-numeric.SYNTHESIZED.json');
    expect(mapObs(lab).obs.valueQuantity).toEqual(lab.valueQuantity);
    // OpenEMR puts free-text lab units in valueQuantity.code with the UCUM system.
    const freeText = { ...lab, valueQuantity: { value: 3, unit: 'per high power field', system: UCUM, code: 'per high power field' } };
    expect(mapObs(freeText).obs.valueQuantity).toEqual({ value: 3, unit: 'per high power field' });
  });

  test('common non-UCUM vital units are normalised to UCUM, inside components too', () => {
    expect(toUcum('C')).toBe('Cel');
    expect(toUcum('F')).toBe('[degF]');
    expect(toUcum('lbs')).toBe('[lb_av]');
    expect(toUcum('in')).toBe('[in_i]');
    expect(toUcum('mmHg')).toBe('mm[Hg]');
    expect(toUcum('bpm')).toBe('/min');
    expect(toUcum('beats/minute')).toBe('/min');
    expect(toUcum('kg/m2')).toBe('kg/m2');
    expect(toUcum('10*3/uL')).toBe('10*3/uL');
    expect(toUcum('{copies}/mL')).toBe('{copies}/mL');
    expect(toUcum('cells per field')).toBeUndefined();
    expect(toUcum('stone')).toBeUndefined();

    const temp = mapObs(sampleWith(5088)).obs;
    expect(temp.valueQuantity).toMatchObject({ unit: 'C', system: UCUM, code: 'Cel' });
    const pulse = mapObs(sampleWith(5087)).obs;
    expect(pulse.valueQuantity).toMatchObject({ unit: 'beats/minute', system: UCUM, code: '/min' });

    const bp = openemrExample<Observation>('observation-vital-bp.swagger.json');
    const odd = {
      ...bp,
      component: [
        { ...bp.component![0]!, valueQuantity: { value: 122, unit: 'mmHg', system: UCUM, code: 'mmHg' } },
        {
          ...bp.component![1]!,
          valueQuantity: { value: 77, unit: 'millimetres of mercury', system: UCUM, code: 'millimetres of mercury' },
        },
      ],
    };
    const out = mapObs(odd).obs;
    expect(out.component![0]!.valueQuantity).toEqual({ value: 122, unit: 'mmHg', system: UCUM, code: 'mm[Hg]' });
    expect(out.component![1]!.valueQuantity).toEqual({ value: 77, unit: 'millimetres of mercury' });
  });

  test('a quantity with a system but no unit loses the meaningless system', () => {
    const vl = sampleWith(856);
    expect(vl.valueQuantity).toEqual({ value: 796900, system: UCUM });
    expect(mapObs(vl).obs.valueQuantity).toEqual({ value: 796900 });
  });
});

describe('vital signs', () => {
  const isVitalCategory = (o: Observation) => (o.category ?? []).some((c) => hasCoding(c, CATEGORY, 'vital-signs'));

  test('vital-signs category added and US Core profile claimed only when valid', () => {
    const weight = mapObs(sampleWith(5089)).obs;
    expect(isVitalCategory(weight)).toBe(true);
    expect(hasCoding(weight.category![0], CATEGORY, 'survey')).toBe(true);
    expect(weight.meta?.profile).toEqual([US_CORE_VITAL_SIGNS]);

    // A unit the body-weight binding does not allow: category yes, profile no.
    const stone = mapObs({ ...sampleWith(5089), valueQuantity: { value: 10, unit: 'stone' } }).obs;
    expect(isVitalCategory(stone)).toBe(true);
    expect(stone.valueQuantity).toEqual({ value: 10, unit: 'stone' });
    expect(stone.meta).toBeUndefined();

    // No effective time: not valid for the profile.
    const { effectiveDateTime: _e, ...noTime } = sampleWith(5089);
    expect(mapObs(noTime as Observation).obs.meta).toBeUndefined();

    // Not a vital sign: no category added, and the source's lab profile claims are dropped.
    const lab = mapObs(openemrExample<Observation>('synthesized/observation-lab-numeric.SYNTHESIZED.json')).obs;
    expect(isVitalCategory(lab)).toBe(false);
    expect(lab.meta).toBeUndefined();
    const survey = mapObs(sampleWith(1271)).obs;
    expect(isVitalCategory(survey)).toBe(false);
    expect(survey.meta).toBeUndefined();

    // OpenEMR's blood-pressure panel is valid as it comes; a component without a UCUM unit is not.
    const bp = openemrExample<Observation>('observation-vital-bp.swagger.json');
    expect(mapObs(bp).obs.meta).toEqual({ profile: [US_CORE_VITAL_SIGNS] });
    const badBp = { ...bp, component: [bp.component![0]!, { ...bp.component![1]!, valueQuantity: { value: 77, unit: 'mercury' } }] };
    expect(mapObs(badBp).obs.meta).toBeUndefined();

    // A vital with a data-absent reason instead of a value qualifies.
    const { valueQuantity: _v, ...absent } = sampleWith(5090);
    const absentOut = mapObs({
      ...(absent as Observation),
      dataAbsentReason: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/data-absent-reason', code: 'unknown' }] },
    }).obs;
    expect(absentOut.meta?.profile).toEqual([US_CORE_VITAL_SIGNS]);
  });

  test('every mapped sample vital claims the profile and carries a UCUM unit the profile allows', () => {
    const vitals = sampleObservations().filter((o) =>
      [5085, 5087, 5088, 5089, 5090, 5092].some((id) => o.code.coding?.[0]?.code === ciel(id)),
    );
    expect(vitals.length).toBe(310);
    for (const v of vitals) {
      const out = mapObs(v).obs;
      expect(out.meta?.profile).toEqual([US_CORE_VITAL_SIGNS]);
      expect(out.valueQuantity?.system).toBe(UCUM);
    }
  });
});
