import type { Observation, Patient } from '@medplum/fhirtypes';
import { createResourceMapper, type MapOutcome, type ResourceMapper } from '../../src/mapping';
import { NINETY_OR_OLDER_BIRTH_YEAR } from '../../src/mapping/deid';
import { DEFAULT_OPTIONS, deidOptions, openemrExample, sampleObservations, samplePatients } from '../fixtures/mapping/load';

function ok(outcome: MapOutcome): Extract<MapOutcome, { ok: true }> {
  if (!outcome.ok) throw new Error(`expected ok, got: ${outcome.reason}`);
  return outcome;
}
const DAY = 86_400_000;
const daysBetween = (a: string, b: string) => Math.round((Date.parse(b.slice(0, 10)) - Date.parse(a.slice(0, 10))) / DAY);

describe('privacy filter', () => {
  test('under default options no Patient carries an SSN', () => {
    const mapper = createResourceMapper(DEFAULT_OPTIONS);
    const sample = samplePatients();
    expect(sample.every((p) => p.identifier?.some((i) => i.system === 'http://hl7.org/fhir/sid/us-ssn'))).toBe(true);
    for (const p of sample) {
      const out = ok(mapper.map(p)).resource as Patient;
      const ssn = p.identifier!.find((i) => i.system === 'http://hl7.org/fhir/sid/us-ssn')!.value!;
      expect(JSON.stringify(out)).not.toContain(ssn);
      expect(out.identifier!.some((i) => i.type?.coding?.some((c) => c.code === 'SS'))).toBe(false);
      // The other identifiers stay.
      expect(out.identifier!.length).toBe(p.identifier!.length - 1);
    }
    // An SSN typed SS without a system (or in OID form) goes too; the OpenEMR PT identifier stays.
    const openemr = openemrExample<Patient>('patient.swagger.json');
    const withSsn: Patient = {
      ...openemr,
      identifier: [
        ...openemr.identifier!,
        { type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'SS' }] }, value: '999-12-3456' },
        { system: 'urn:oid:2.16.840.1.113883.4.1', value: '999-65-4321' },
      ],
    };
    const out = ok(mapper.map(withSsn)).resource as Patient;
    expect(out.identifier).toEqual(openemr.identifier);
  });

  test('an SSN is dropped wherever it stands: reference identifiers, contained resources, links', () => {
    const mapper = createResourceMapper(DEFAULT_OPTIONS);
    const ssn = { system: 'http://hl7.org/fhir/sid/us-ssn', value: '999-88-7777' };
    const observation = {
      ...sampleObservations()[0]!,
      subject: { reference: 'Patient/p1', identifier: ssn },
      contained: [{ resourceType: 'Patient', id: 'c1', identifier: [ssn, { system: 'urn:mrn', value: 'M1' }] }],
    } as Observation;
    const patient = {
      ...samplePatients()[0]!,
      link: [
        {
          type: 'seealso',
          other: { reference: 'Patient/p2', identifier: { system: 'urn:oid:2.16.840.1.113883.4.1', value: '999-88-7777' } },
        },
      ],
    } as Patient;
    for (const out of [ok(mapper.map(observation)).resource, ok(mapper.map(patient)).resource]) {
      expect(JSON.stringify(out)).not.toContain('999-88-7777');
    }
    expect(JSON.stringify(ok(mapper.map(observation)).resource)).toContain('"value":"M1"');
  });

  test('identifier systems named in the setting are dropped, others kept', () => {
    const mapper = createResourceMapper({
      ...DEFAULT_OPTIONS,
      dropIdentifierSystems: ['http://hl7.org/fhir/sid/us-ssn', 'urn:oid:2.16.840.1.113883.4.3.25'],
    });
    const out = ok(mapper.map(samplePatients()[0]!)).resource as Patient;
    expect(out.identifier!.map((i) => i.system)).toEqual([
      'https://github.com/synthetichealth/synthea',
      'http://hospital.smarthealthit.org',
      'http://standardhealthrecord.org/fhir/StructureDefinition/passportNumber',
    ]);
  });

  test('server-owned meta is never sent; a US Core Patient claim is kept only while it holds', () => {
    const mapper = createResourceMapper(DEFAULT_OPTIONS);
    const openemr = ok(mapper.map(openemrExample<Patient>('patient.swagger.json'))).resource as Patient;
    expect(openemr.meta).toBeUndefined();
    const synthea = ok(mapper.map(samplePatients()[0]!)).resource as Patient;
    expect(synthea.meta).toEqual({ profile: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'] });
    // Without a name the claim no longer holds.
    const { name: _n, ...nameless } = samplePatients()[0]!;
    expect((ok(mapper.map(nameless as Patient)).resource as Patient).meta).toBeUndefined();
    // Without de-identification the narrative is kept as it is.
    expect(synthea.text).toEqual(samplePatients()[0]!.text);
  });
});

describe('de-identification', () => {
  let mapper: ResourceMapper;
  let patients: Patient[];
  let observations: Observation[];
  beforeAll(() => {
    mapper = createResourceMapper(deidOptions());
    patients = samplePatients().map((p) => ok(mapper.map(p)).resource as Patient);
    observations = sampleObservations().map((o) => ok(mapper.map(o)).resource as Observation);
  });

  test('de-identified output has no name, address, telecom or original id while every Observation.subject resolves to a de-identified Patient', () => {
    const all = JSON.stringify([...patients, ...observations]);
    for (const p of patients) {
      for (const k of ['name', 'address', 'telecom', 'identifier', 'text', 'photo', 'contact']) expect(p).not.toHaveProperty(k);
      expect(JSON.stringify(p.extension ?? [])).not.toMatch(/mothersMaidenName|birthPlace|geolocation/);
      expect(p.meta).toBeUndefined();
    }
    for (const src of samplePatients()) {
      for (const n of src.name ?? []) {
        if (n.family) expect(all).not.toContain(n.family);
        for (const g of n.given ?? []) expect(all).not.toContain(g);
      }
      for (const a of src.address ?? []) for (const l of a.line ?? []) expect(all).not.toContain(l);
      for (const t of src.telecom ?? []) expect(all).not.toContain(t.value!);
      for (const i of src.identifier ?? []) expect(all).not.toContain(i.value!);
      expect(all).not.toContain(src.id!);
      expect(all).not.toContain(src.birthDate!);
    }
    // Every string in the output, and its pieces between / and :, for the id checks.
    const tokens = new Set<string>();
    const collect = (v: unknown): void => {
      if (typeof v === 'string') for (const t of [v, ...v.split(/[/:]/)]) tokens.add(t);
      else if (v && typeof v === 'object') Object.values(v).forEach(collect);
    };
    collect([...patients, ...observations]);
    for (const o of sampleObservations()) {
      expect(tokens.has(o.id!)).toBe(false);
      expect(tokens.has((o.encounter!.reference as string).slice('urn:uuid:'.length))).toBe(false);
    }
    const patientIds = new Set(patients.map((p) => `Patient/${p.id}`));
    for (const o of observations) {
      expect(o).not.toHaveProperty('text');
      expect(o).not.toHaveProperty('note');
      expect(patientIds.has(o.subject!.reference!)).toBe(true);
    }
    // targetId gives the same pseudonyms.
    const src = samplePatients()[3]!;
    expect(`Patient/${mapper.targetId('Patient', src.id!)}`).toBe(`Patient/${patients[3]!.id}`);
    expect(patients[3]!.id).toMatch(/^[a-f0-9]{32}$/);
  });

  test('date shift is consistent per patient and differs between patients', () => {
    const shiftOf = new Map<string, number>();
    let grouped = 0;
    samplePatients().forEach((src, i) => {
      // A birth date 90 or more years back is Safe Harbor's one category, not shifted
      // (mapping-deid-generic.test.ts): that patient's shift is read from its Observations below.
      if (patients[i]!.birthDate === NINETY_OR_OLDER_BIRTH_YEAR) return void grouped++;
      const shift = daysBetween(src.birthDate!, patients[i]!.birthDate!);
      expect(shift).not.toBe(0);
      expect(Math.abs(shift)).toBeLessThanOrEqual(180);
      shiftOf.set(`Patient/${patients[i]!.id}`, shift);
    });
    expect(new Set(shiftOf.values()).size).toBeGreaterThan(10);
    // The sample's Patient born in 1929 (and, from 2029, the one born in 1939).
    expect(grouped).toBeGreaterThan(0);
    expect(patients[samplePatients().findIndex((p) => p.birthDate === '1929-12-04')]!.birthDate).toBe(NINETY_OR_OLDER_BIRTH_YEAR);
    sampleObservations().forEach((src, i) => {
      const out = observations[i]!;
      if (!shiftOf.has(out.subject!.reference!))
        shiftOf.set(out.subject!.reference!, daysBetween(src.effectiveDateTime!, out.effectiveDateTime!));
      const shift = shiftOf.get(out.subject!.reference!)!;
      expect(daysBetween(src.effectiveDateTime!, out.effectiveDateTime!)).toBe(shift);
      expect(daysBetween(src.issued!, out.issued!)).toBe(shift);
      // Precision, time of day and offset are kept.
      expect(out.effectiveDateTime!.slice(10)).toBe(src.effectiveDateTime!.slice(10));
      expect(out.issued!.slice(10)).toBe(src.issued!.slice(10));
    });
    // Year-month and year precision stay as they were.
    const p = samplePatients()[0]!;
    const partial = ok(mapper.map({ ...p, birthDate: '1998-04', deceasedDateTime: '2020' } as Patient)).resource as Patient;
    expect(partial.birthDate).toMatch(/^\d{4}-\d{2}$/);
    expect(partial.deceasedDateTime).toMatch(/^\d{4}$/);
  });

  test('a different key gives different pseudonyms and shifts', () => {
    const other = createResourceMapper({ ...deidOptions(), deid: { enabled: true, key: 'another-key-of-at-least-32-characters!!' } });
    const a = ok(mapper.map(samplePatients()[0]!)).resource as Patient;
    const b = ok(other.map(samplePatients()[0]!)).resource as Patient;
    expect(a.id).not.toBe(b.id);
  });

  test('de-identification without a key is refused', () => {
    expect(() => createResourceMapper({ ...DEFAULT_OPTIONS, deid: { enabled: true } })).toThrow(/key/);
  });
});
