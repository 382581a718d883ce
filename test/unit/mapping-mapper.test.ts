import type { Observation, Patient } from '@medplum/fhirtypes';
import { canonicalJson } from '../../src/fhir/canonical';
import { createResourceMapper, UnmappedCodeReport, type MapOutcome } from '../../src/mapping';
import { parseReference, referencedId } from '../../src/fhir/references';
import { DEFAULT_OPTIONS, deepFreeze, deidOptions, openemrExample, sampleObservations, samplePatients } from '../fixtures/mapping/load';

function ok(outcome: MapOutcome): Extract<MapOutcome, { ok: true }> {
  if (!outcome.ok) throw new Error(`expected ok, got: ${outcome.reason}`);
  return outcome;
}

describe('determinism', () => {
  test('mapping is deterministic and does not mutate its input', () => {
    const inputs = [...samplePatients().slice(0, 5), ...sampleObservations().slice(0, 400)].map((r) => deepFreeze(structuredClone(r)));
    for (const options of [DEFAULT_OPTIONS, deidOptions()]) {
      const a = createResourceMapper(options);
      const b = createResourceMapper(options);
      const first = inputs.map((r) => JSON.stringify(a.map(r)));
      // Frozen input: a mutation would have thrown and come back as a failure.
      expect(first.every((s) => s.startsWith('{"ok":true'))).toBe(true);
      // Same mapper again, and a fresh one: byte-identical (key order included).
      expect(inputs.map((r) => JSON.stringify(a.map(r)))).toEqual(first);
      expect(inputs.map((r) => JSON.stringify(b.map(r)))).toEqual(first);
    }
  });

  test('the output shares no objects with the input', () => {
    const src = sampleObservations()[0]!;
    const out = ok(createResourceMapper(DEFAULT_OPTIONS).map(src)).resource as Observation;
    expect(out.valueQuantity).not.toBe(src.valueQuantity);
    expect(out.category).not.toBe(src.category);
    expect(out.code).not.toBe(src.code);
  });
});

describe('validation before write', () => {
  test('validation failure reason carries no patient data', () => {
    const mapper = createResourceMapper(DEFAULT_OPTIONS);
    const base = samplePatients()[0]!;
    const bad = {
      ...base,
      name: [{ family: 'Quuxworthington', given: [12345 as unknown as string] }],
      birthDate: 'Quuxworthington-born',
      gender: 'Zebediah',
      'Zebediah Quuxworthington': 'hidden',
    } as unknown as Patient;
    const outcome = mapper.map(bad);
    expect(outcome.ok).toBe(false);
    const reason = (outcome as { reason: string }).reason;
    expect(reason).toMatch(/^FHIR validation failed: /);
    expect(reason).toContain('Patient.birthDate');
    expect(reason).toContain('Patient.gender');
    expect(reason).toContain('Patient.name[0].given[0]');
    for (const secret of ['Quuxworthington', 'Zebediah', '12345', 'hidden', base.id!, 'Alva958', 'Dickinson688'])
      expect(reason).not.toContain(secret);

    // An Observation whose value is of the wrong type, and one with a bad status.
    const obs = sampleObservations()[0]!;
    const badObs = ok(mapper.map(obs)).resource as Observation;
    const r2 = mapper.map({ ...obs, valueQuantity: { value: 'Quuxworthington' as unknown as number } });
    expect(r2).toEqual({ ok: false, reason: expect.stringMatching(/^FHIR validation failed: Observation\.valueQuantity\.value: /) });
    expect((r2 as { reason: string }).reason).not.toContain('Quuxworthington');
    const r3 = mapper.map({ ...obs, status: 'Quuxworthington' as Observation['status'] });
    expect((r3 as { reason: string }).reason).toBe(
      'FHIR validation failed: Observation.status: Value not in required value set observation-status',
    );
    expect(badObs.status).toBe('final');
  });

  test('a resource without a valid id is refused without quoting it', () => {
    const mapper = createResourceMapper(DEFAULT_OPTIONS);
    const outcome = mapper.map({ ...samplePatients()[0]!, id: 'Zebediah Quuxworthington' });
    expect(outcome).toEqual({ ok: false, reason: 'FHIR validation failed: Patient.id: missing or invalid id' });
  });

  test('all sample data and OpenEMR examples pass validation', () => {
    const mapper = createResourceMapper(DEFAULT_OPTIONS);
    const examples = [
      'patient.swagger.json',
      'patient-dataabsent.swagger.json',
      'observation-vital-bp.swagger.json',
      'synthesized/observation-lab.SYNTHESIZED.json',
      'synthesized/observation-lab-numeric.SYNTHESIZED.json',
    ].map((f) => openemrExample<Patient | Observation>(f));
    const failures = [...samplePatients(), ...sampleObservations(), ...examples].map((r) => mapper.map(r)).filter((o) => !o.ok);
    expect(failures).toEqual([]);
  });
});

describe('references', () => {
  test('urn:uuid references become Patient/<id>', () => {
    const mapper = createResourceMapper(DEFAULT_OPTIONS);
    const src = sampleObservations()[0]!;
    expect(src.subject!.reference).toMatch(/^urn:uuid:/);
    const id = src.subject!.reference!.slice('urn:uuid:'.length);
    for (const reference of [
      src.subject!.reference!,
      `https://emr.example.org/apis/default/fhir/Patient/${id}`,
      `Patient/${id}/_history/1`,
      `Patient/${id}`,
    ]) {
      const out = ok(mapper.map({ ...src, subject: { reference } })).resource as Observation;
      expect(out.subject).toEqual({ reference: `Patient/${id}` });
    }
    expect(parseReference('urn:uuid:abc', undefined)).toBeUndefined();
    expect(parseReference('http://h/fhir/Encounter/e1/_history/3', undefined)).toEqual({ type: 'Encounter', id: 'e1' });
    // The sync reads subjects with the same rules the mapper writes them with.
    expect(referencedId('Patient/1/', 'Patient')).toBe('1');
    expect(referencedId('urn:uuid:has space', 'Patient')).toBeUndefined();
    expect(referencedId('Group/1', 'Patient')).toBeUndefined();
    // A Patient.link to another Patient is carried and normalised too.
    const p = samplePatients()[1]!;
    const linked = ok(mapper.map({ ...p, link: [{ other: { reference: 'urn:uuid:other-1', type: 'Patient' }, type: 'seealso' }] }))
      .resource as Patient;
    expect(linked.link).toEqual([{ other: { reference: 'Patient/other-1', type: 'Patient' }, type: 'seealso' }]);
  });

  test('uncarried Encounter references kept or dropped by setting', () => {
    const src = sampleObservations()[0]!;
    const encounterId = src.encounter!.reference!.slice('urn:uuid:'.length);
    const kept = ok(createResourceMapper(DEFAULT_OPTIONS).map(src)).resource as Observation;
    expect(kept.encounter).toEqual({ reference: `Encounter/${encounterId}` });
    const dropped = ok(createResourceMapper({ ...DEFAULT_OPTIONS, uncarriedReferences: 'drop' }).map(src)).resource as Observation;
    expect(dropped).not.toHaveProperty('encounter');
    expect(dropped.subject).toEqual(kept.subject);

    // OpenEMR's absolute/relative Encounter references, and performers in arrays.
    const lab = openemrExample<Observation>('synthesized/observation-lab.SYNTHESIZED.json');
    const withPerformer = {
      ...lab,
      performer: [{ reference: 'https://emr.example.org/apis/default/fhir/Practitioner/p1', display: 'Dr. Zebediah' }],
    };
    const keptLab = ok(createResourceMapper(DEFAULT_OPTIONS).map(withPerformer)).resource as Observation;
    expect(keptLab.encounter).toEqual(lab.encounter);
    expect(keptLab.performer).toEqual([{ reference: 'Practitioner/p1', display: 'Dr. Zebediah' }]);
    const droppedLab = ok(createResourceMapper({ ...DEFAULT_OPTIONS, uncarriedReferences: 'drop' }).map(withPerformer))
      .resource as Observation;
    expect(droppedLab).not.toHaveProperty('encounter');
    expect(droppedLab).not.toHaveProperty('performer');

    // De-identified: kept references are pseudonymised and lose their display.
    const deid = createResourceMapper(deidOptions());
    const deidLab = ok(deid.map(withPerformer)).resource as Observation;
    expect(deidLab.performer).toEqual([{ reference: `Practitioner/${deid.targetId('Practitioner', 'p1')}` }]);
    expect(deidLab.encounter!.reference).toBe(`Encounter/${deid.targetId('Encounter', '96506862-0000-4000-8000-000000000001')}`);
  });
});

describe('UnmappedCodeReport', () => {
  test('counts, sorts by count then system and code, totals and merges', () => {
    const a = new UnmappedCodeReport();
    a.add([
      { system: 'urn:b', code: '2' },
      { system: 'urn:a', code: '9', display: 'Nine' },
    ]);
    a.add([
      { system: 'urn:b', code: '2', display: 'Two' },
      { system: 'urn:a', code: '1' },
    ]);
    const b = new UnmappedCodeReport();
    b.add([
      { system: 'urn:a', code: '9' },
      { system: 'urn:a', code: '9' },
      { system: 'urn:c', code: '3' },
    ]);
    expect(a.total()).toBe(4);
    a.merge(b);
    expect(a.total()).toBe(7);
    expect(a.entries()).toEqual([
      { system: 'urn:a', code: '9', display: 'Nine', count: 3 },
      { system: 'urn:b', code: '2', display: 'Two', count: 2 },
      { system: 'urn:a', code: '1', count: 1 },
      { system: 'urn:c', code: '3', count: 1 },
    ]);
    // entries() hands out copies.
    a.entries()[0]!.count = 100;
    expect(a.entries()[0]!.count).toBe(3);
  });

  test('the sample data report lists the CIEL concepts no map covers', () => {
    const mapper = createResourceMapper(DEFAULT_OPTIONS);
    const report = new UnmappedCodeReport();
    for (const o of sampleObservations()) report.add(ok(mapper.map(o)).unmapped);
    const top = report.entries()[0]!;
    expect(top).toEqual({
      system: 'https://cielterminology.org',
      code: '1271AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      display: 'TESTS ORDERED',
      count: 1014,
    });
    // Mapped vitals never appear.
    expect(report.entries().some((e) => e.code.startsWith('5089'))).toBe(false);
    // The order codes were met in does not change the report.
    const reversed = new UnmappedCodeReport();
    for (const o of [...sampleObservations()].reverse()) reversed.add(ok(mapper.map(o)).unmapped);
    expect(canonicalJson(reversed.entries())).toBe(canonicalJson(report.entries()));
  });
});

describe('outputs stand alone', () => {
  test('changing one mapped vital sign does not change the next one mapped', () => {
    const mapper = createResourceMapper(DEFAULT_OPTIONS);
    const weight = sampleObservations().find((o) => o.code?.coding?.some((c) => c.code?.startsWith('5089')))!;
    const first = ok(mapper.map(weight)).resource as Observation;
    const before = canonicalJson(first);
    first.category!.forEach((c) => c.coding?.forEach((cd) => (cd.code = 'changed')));
    expect(canonicalJson(ok(mapper.map(weight)).resource)).toBe(before);
  });

  test('a unit named like an Object member is not taken for a UCUM alias', () => {
    const { toUcum } = jest.requireActual('../../src/mapping') as typeof import('../../src/mapping');
    for (const unit of ['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__proto__']) expect(toUcum(unit)).toBeUndefined();
    expect(toUcum('lbs')).toBe('[lb_av]');
  });
});
