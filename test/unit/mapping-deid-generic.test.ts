/**
 * De-identification is generic (src/mapping/deid-resource.ts): driven by the FHIR R4 definitions, it
 * shifts every date of any resource type by its Patient's offset, hashes every reference and id the
 * same way, and removes names, contact points, identifiers and free text wherever they stand, so a
 * type the de-identification code never heard of is handled like the ones it has.
 */
import type { Condition, Patient } from '@medplum/fhirtypes';
import { createResourceMapper, type MapOutcome } from '../../src/mapping';
import { Deidentifier, NINETY_OR_OLDER_BIRTH_YEAR, ninetyOrOlder } from '../../src/mapping/deid';
import { DEIDENTIFIED_ORGANIZATION_NAME, deidentifyResource, shiftKeyOf } from '../../src/mapping/deid-resource';
import type { SyncedResource } from '../../src/fhir/types';
import { DEID_KEY, deepFreeze, deidOptions, samplePatients } from '../fixtures/mapping/load';

type Json = Record<string, any>;
const DAY = 86_400_000;
const daysBetween = (a: string, b: string) => Math.round((Date.parse(b.slice(0, 10)) - Date.parse(a.slice(0, 10))) / DAY);
function ok(outcome: MapOutcome): Extract<MapOutcome, { ok: true }> {
  if (!outcome.ok) throw new Error(`expected ok, got: ${outcome.reason}`);
  return outcome;
}

const PATIENT = 'p-0001';
const deid = new Deidentifier(DEID_KEY);
const hash = (type: string, id: string) => `${type}/${deid.pseudonymId(type, id)}`;

/** A MedicationRequest as the mapper leaves it (relative references, source ids): dates and references at every depth. */
const medicationRequest = (): Json => ({
  resourceType: 'MedicationRequest',
  id: 'mr-1',
  meta: { profile: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-medicationrequest'] },
  text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Clopidogrel for Ann Smith</div>' },
  identifier: [{ system: 'urn:oid:1.2.3', value: 'RX-778899' }],
  status: 'active',
  intent: 'order',
  // A year-shaped code (RxNorm 1191, aspirin) is a code, not a year.
  medicationCodeableConcept: {
    coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '1191', display: 'Aspirin' }],
    text: 'Aspirin',
  },
  subject: { reference: `Patient/${PATIENT}`, display: 'Ann Smith' },
  encounter: { reference: 'Encounter/e-1' },
  authoredOn: '2001-08-13T11:30:34+00:00',
  requester: {
    reference: 'Practitioner/dr-1',
    display: 'Dr. Karl Bailey',
    identifier: { system: 'http://hl7.org/fhir/sid/us-npi', value: '9999973209' },
  },
  reasonReference: [{ reference: 'Condition/c-1' }, { reference: '#contained-1' }, { reference: 'Practitioner?identifier=x|1' }],
  note: [{ authorString: 'Nurse Jo', time: '2001-08-13T12:00:00Z', text: 'Call Ann at 555-0100 after 2001-08-20' }],
  dosageInstruction: [
    {
      text: 'Take one tablet daily',
      timing: { event: ['2001-08-14'], repeat: { boundsPeriod: { start: '2001-08-14', end: '2001-09-14' } } },
      patientInstruction: 'Ask your daughter Mary to help',
    },
  ],
  dispenseRequest: { validityPeriod: { start: '2001-08-13' }, performer: { reference: 'Organization/org-1', display: 'Corner Pharmacy' } },
  extension: [{ url: 'http://example.org/fhir/StructureDefinition/reviewed', valueDateTime: '2001-08-15T09:00:00Z' }],
  _authoredOn: { extension: [{ url: 'http://example.org/fhir/StructureDefinition/entered', valueInstant: '2001-08-13T11:31:00Z' }] },
});

test('a resource of a type the de-identification code never names: every date shifted by its Patient, every reference and the id hashed, free text gone', () => {
  const src = deepFreeze(medicationRequest());
  const out = deidentifyResource(src, deid) as Json;
  const shift = deid.shiftDays(PATIENT);
  expect(out.id).toBe(deid.pseudonymId('MedicationRequest', 'mr-1'));
  expect(daysBetween(src.authoredOn, out.authoredOn)).toBe(shift);
  expect(out.authoredOn.slice(10)).toBe(src.authoredOn.slice(10)); // time of day and offset kept
  expect(daysBetween('2001-08-14', out.dosageInstruction[0].timing.event[0])).toBe(shift);
  expect(daysBetween('2001-08-14', out.dosageInstruction[0].timing.repeat.boundsPeriod.start)).toBe(shift);
  expect(daysBetween('2001-09-14', out.dosageInstruction[0].timing.repeat.boundsPeriod.end)).toBe(shift);
  expect(daysBetween('2001-08-13', out.dispenseRequest.validityPeriod.start)).toBe(shift);
  expect(daysBetween('2001-08-15', out.extension[0].valueDateTime)).toBe(shift);
  expect(daysBetween('2001-08-13', out._authoredOn.extension[0].valueInstant)).toBe(shift);
  // References: Type/<hash>, display and identifier gone; unresolvable forms gone.
  expect(out.subject).toEqual({ reference: hash('Patient', PATIENT) });
  expect(out.encounter).toEqual({ reference: hash('Encounter', 'e-1') });
  expect(out.requester).toEqual({ reference: hash('Practitioner', 'dr-1') });
  expect(out.reasonReference).toEqual([{ reference: hash('Condition', 'c-1') }]);
  expect(out.dispenseRequest.performer).toEqual({ reference: hash('Organization', 'org-1') });
  // Narrative, identifiers, annotations and free-text strings gone; codes and their text kept.
  for (const k of ['text', 'identifier', 'note']) expect(out).not.toHaveProperty(k);
  expect(out.dosageInstruction[0]).not.toHaveProperty('patientInstruction');
  expect(out.dosageInstruction[0].text).toBe('Take one tablet daily');
  expect(out.medicationCodeableConcept).toEqual(src.medicationCodeableConcept);
  expect(out.meta).toEqual(src.meta);
  const json = JSON.stringify(out);
  for (const s of [
    'Ann',
    'Smith',
    'Bailey',
    '9999973209',
    'RX-778899',
    '555-0100',
    'Mary',
    'Corner Pharmacy',
    'mr-1',
    'dr-1',
    'org-1',
    'e-1"',
    'c-1"',
    PATIENT,
  ])
    expect([s, json.includes(s)]).toEqual([s, false]);
});

test('documents and reports: the attachment keeps its content type only, a conclusion goes, the report still points at its results', () => {
  const report = deidentifyResource(
    {
      resourceType: 'DiagnosticReport',
      id: 'dr-9',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '34117-2' }] },
      subject: { reference: `Patient/${PATIENT}` },
      effectiveDateTime: '1998-04-29T06:53:25+00:00',
      issued: '1998-04-29T06:53:25.410+00:00',
      result: [{ reference: 'Observation/o-1', display: 'Weight' }],
      conclusion: 'Ann is doing well',
      presentedForm: [
        { contentType: 'text/plain', data: 'QW5uIFNtaXRo', title: 'Note for Ann Smith', url: 'Binary/b-1', creation: '1998-04-29' },
      ],
    },
    deid,
  ) as Json;
  const shift = deid.shiftDays(PATIENT);
  expect(report.presentedForm).toEqual([{ contentType: 'text/plain', creation: expect.any(String) }]);
  expect(daysBetween('1998-04-29', report.presentedForm[0].creation)).toBe(shift);
  expect(daysBetween('1998-04-29', report.issued)).toBe(shift);
  expect(report).not.toHaveProperty('conclusion');
  expect(report.result).toEqual([{ reference: hash('Observation', 'o-1') }]);
});

test('resources of no patient (Practitioner, Organization, Location): names, identifiers, telecom, street and coordinates go, the state stays, dates move by their own key, an Organization is named by one fixed text', () => {
  const practitioner = deidentifyResource(
    {
      resourceType: 'Practitioner',
      id: 'dr-1',
      identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: '9999973209' }],
      active: true,
      name: [{ family: 'Bailey598', given: ['Karl184'], prefix: ['Dr.'] }],
      telecom: [{ system: 'email', value: 'karl.bailey@example.org' }],
      address: [{ line: ['1 Main St'], city: 'Peabody', postalCode: '01960', state: 'MA', country: 'US' }],
      gender: 'male',
      birthDate: '1960-02-03',
      qualification: [
        { code: { text: 'MD' }, period: { start: '1990-06-01' }, issuer: { reference: 'Organization/org-1', display: 'Board' } },
      ],
    },
    deid,
  ) as Json;
  expect(practitioner).toEqual({
    resourceType: 'Practitioner',
    id: deid.pseudonymId('Practitioner', 'dr-1'),
    active: true,
    address: [{ state: 'MA', country: 'US' }],
    gender: 'male',
    birthDate: expect.any(String),
    qualification: [{ code: { text: 'MD' }, period: { start: expect.any(String) }, issuer: { reference: hash('Organization', 'org-1') } }],
  });
  const own = deid.shiftDays('Practitioner/dr-1');
  expect(shiftKeyOf({ resourceType: 'Practitioner', id: 'dr-1' })).toBe('Practitioner/dr-1');
  expect(daysBetween('1960-02-03', practitioner.birthDate)).toBe(own);
  expect(daysBetween('1990-06-01', practitioner.qualification[0].period.start)).toBe(own);

  const location = deidentifyResource(
    {
      resourceType: 'Location',
      id: 'loc-1',
      status: 'active',
      name: 'PCP42414',
      alias: ['Peabody Clinic'],
      description: 'Second floor, next to the Hickle Parade bakery',
      telecom: [{ system: 'phone', value: '555-0199' }],
      address: { line: ['919 Hickle Parade'], city: 'Peabody', district: 'Essex', postalCode: '01960', state: 'MA' },
      position: { latitude: 42.54, longitude: -70.94 },
      managingOrganization: { reference: 'Organization/org-1', display: 'PCP42414' },
    },
    deid,
  ) as Json;
  expect(location).toEqual({
    resourceType: 'Location',
    id: deid.pseudonymId('Location', 'loc-1'),
    status: 'active',
    address: { state: 'MA' },
    managingOrganization: { reference: hash('Organization', 'org-1') },
  });
  const organization = deidentifyResource(
    { resourceType: 'Organization', id: 'org-1', active: true, name: 'PCP42414', type: [{ text: 'Healthcare Provider' }] },
    deid,
  );
  expect(organization).toEqual({
    resourceType: 'Organization',
    id: deid.pseudonymId('Organization', 'org-1'),
    active: true,
    type: [{ text: 'Healthcare Provider' }],
    // org-1 (name or identifier) holds with a fixed name: HAPI's validator refuses an Organization with neither.
    name: DEIDENTIFIED_ORGANIZATION_NAME,
  });
});

test("one patient, one shift across types: the mapper's Patient and Condition and a de-identified type it does not carry move by the same days and point at the same hashes", () => {
  const mapper = createResourceMapper({ ...deidOptions(), carriedTypes: ['Patient', 'Encounter', 'Condition', 'Observation'] });
  const src = samplePatients()[0]!;
  const p = ok(mapper.map(src)).resource as Patient;
  const condition: Condition = {
    resourceType: 'Condition',
    id: 'cond-1',
    subject: { reference: `Patient/${src.id}` },
    code: { text: 'Tuberculosis' },
    onsetDateTime: '2016-09-13T06:53:25+00:00',
    recordedDate: '2016-09-14',
    note: [{ text: `Told ${src.name![0]!.family} on 2016-09-14` }],
  };
  const c = ok(mapper.map(condition as SyncedResource)).resource as Condition;
  const immunization = deidentifyResource(
    {
      resourceType: 'Immunization',
      id: 'imm-1',
      status: 'completed',
      vaccineCode: { coding: [{ system: 'http://hl7.org/fhir/sid/cvx', code: '08' }] },
      patient: { reference: `Patient/${src.id}` },
      occurrenceDateTime: '1998-04-29T06:53:25+00:00',
      expirationDate: '1999-01-01',
      lotNumber: 'LOT-1',
    },
    deid,
  ) as Json;
  const shift = daysBetween(src.birthDate!, p.birthDate!);
  expect(shift).toBe(deid.shiftDays(src.id!));
  expect(daysBetween(condition.onsetDateTime!, c.onsetDateTime!)).toBe(shift);
  // recordedDate (a date element whose name says nothing of dates) moves too.
  expect(daysBetween(condition.recordedDate!, c.recordedDate!)).toBe(shift);
  expect(daysBetween('1998-04-29', immunization.occurrenceDateTime)).toBe(shift);
  expect(daysBetween('1999-01-01', immunization.expirationDate)).toBe(shift);
  expect(c.subject!.reference).toBe(`Patient/${p.id}`);
  expect(immunization.patient.reference).toBe(`Patient/${p.id}`);
  expect(c).not.toHaveProperty('note');
  expect(immunization.lotNumber).toBe('LOT-1');
  // Another patient moves by its own shift.
  const other = samplePatients().find((q) => deid.shiftDays(q.id!) !== shift)!;
  const o = ok(mapper.map(other)).resource as Patient;
  expect(daysBetween(other.birthDate!, o.birthDate!)).toBe(deid.shiftDays(other.id!));
});

test('determinism: the same input gives byte-identical output from fresh de-identifiers, and the input is left as it was', () => {
  const src = deepFreeze(medicationRequest());
  const a = JSON.stringify(deidentifyResource(src, new Deidentifier(DEID_KEY)));
  const b = JSON.stringify(deidentifyResource(src, new Deidentifier(DEID_KEY)));
  expect(a).toBe(b);
  expect(JSON.stringify(deidentifyResource(src, deid))).toBe(a);
  const mapperA = createResourceMapper(deidOptions());
  const mapperB = createResourceMapper(deidOptions());
  for (const p of samplePatients().slice(0, 5))
    expect(JSON.stringify(ok(mapperA.map(p)).resource)).toBe(JSON.stringify(ok(mapperB.map(p)).resource));
});

test('elements the definitions do not know are walked by shape: a full date moves, a reference is hashed, a bare number stays', () => {
  const out = deidentifyResource(
    {
      resourceType: 'Observation',
      id: 'o-1',
      status: 'final',
      subject: { reference: `Patient/${PATIENT}` },
      custom: { when: '2020-01-02', ref: { reference: 'Encounter/e-1' }, n: '2020' },
    },
    deid,
  ) as Json;
  expect(daysBetween('2020-01-02', out.custom.when)).toBe(deid.shiftDays(PATIENT));
  expect(out.custom.ref).toEqual({ reference: hash('Encounter', 'e-1') });
  expect(out.custom.n).toBe('2020');
});

describe('ages over 89 are one category, "90 or older" (Safe Harbor, 45 CFR §164.514(b)(2)(i)(C))', () => {
  const TODAY = Date.parse('2026-06-15T12:00:00Z');
  const aged = new Deidentifier(DEID_KEY, { now: () => TODAY });
  /** A source Patient id whose shift satisfies `ok` (ids are free: the shift is a keyed hash of them). */
  const patientWith = (ok: (shift: number) => boolean) => {
    for (let i = 0; ; i++) if (ok(aged.shiftDays(`old-${i}`))) return `old-${i}`;
  };
  const patient = (id: string, birthDate: string, extra: Json = {}): Json =>
    deidentifyResource({ resourceType: 'Patient', id, gender: 'female', birthDate, ...extra }, aged) as Json;

  test('a birth date that makes its person 90 or older becomes the one fixed year, its birth time goes; the other dates still move by the shift', () => {
    const id = patientWith(() => true);
    const out = patient(id, '1929-12-04', {
      _birthDate: {
        extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime', valueDateTime: '1929-12-04T06:10:00Z' }],
      },
      deceasedDateTime: '2026-02-01T10:00:00Z',
    });
    expect(out.birthDate).toBe(NINETY_OR_OLDER_BIRTH_YEAR);
    expect(out).not.toHaveProperty('_birthDate');
    expect(daysBetween('2026-02-01', out.deceasedDateTime)).toBe(aged.shiftDays(id));
    // Every age reckoned from it, today or later, reads 90 or more; and it is the same for everyone that old.
    expect(ninetyOrOlder(out.birthDate, TODAY)).toBe(true);
    expect(
      patient(
        patientWith(() => true),
        '1901-03-03',
      ).birthDate,
    ).toBe(NINETY_OR_OLDER_BIRTH_YEAR);
    // On the 90th birthday, exactly; a year alone counts from its first day (it may mean 90).
    expect(
      patient(
        patientWith((d) => d > 0),
        '1936-06-15',
      ).birthDate,
    ).toBe(NINETY_OR_OLDER_BIRTH_YEAR);
    expect(
      patient(
        patientWith((d) => d > 0),
        '1936',
      ).birthDate,
    ).toBe(NINETY_OR_OLDER_BIRTH_YEAR);
  });

  test('89 keeps its shifted birth date, unless the shift makes it read 90', () => {
    // A day short of 90, moved later: still 89, shifted as any date.
    const later = patientWith((d) => d > 0);
    expect(daysBetween('1936-06-16', patient(later, '1936-06-16').birthDate)).toBe(aged.shiftDays(later));
    // 89 and ten months, moved more than 47 days earlier: the shifted date would say 90, so it is the category.
    const earlier = patientWith((d) => d < -50);
    expect(patient(earlier, '1936-08-01').birthDate).toBe(NINETY_OR_OLDER_BIRTH_YEAR);
    // Younger people keep their shifted dates whatever the shift.
    const any = patientWith((d) => d < 0);
    expect(daysBetween('1937-06-16', patient(any, '1937-06-16').birthDate)).toBe(aged.shiftDays(any));
  });

  test('any resource with a birth date (a Practitioner) and any Age of 90 years or more (Condition.onsetAge) are grouped the same way', () => {
    const practitioner = deidentifyResource({ resourceType: 'Practitioner', id: 'dr-old', birthDate: '1931-01-20' }, aged) as Json;
    expect(practitioner.birthDate).toBe(NINETY_OR_OLDER_BIRTH_YEAR);
    const condition = (onsetAge: Json) =>
      deidentifyResource(
        { resourceType: 'Condition', id: 'c-old', subject: { reference: `Patient/${PATIENT}` }, code: { text: 'Hip fracture' }, onsetAge },
        aged,
      ) as Json;
    const ucum = { system: 'http://unitsofmeasure.org' };
    const category = { value: 90, comparator: '>=', unit: 'a', system: 'http://unitsofmeasure.org', code: 'a' };
    expect(condition({ value: 93, unit: 'years', ...ucum, code: 'a' }).onsetAge).toEqual(category);
    expect(condition({ value: 1100, unit: 'months', ...ucum, code: 'mo' }).onsetAge).toEqual(category);
    expect(condition({ value: 89, unit: 'years', ...ucum, code: 'a' }).onsetAge).toEqual({ value: 89, unit: 'years', ...ucum, code: 'a' });
  });

  test('the sample Patient born in 1929, through the mapper: the category; the same output on every run', () => {
    const src = samplePatients().find((p) => p.birthDate === '1929-12-04')!;
    const a = ok(createResourceMapper(deidOptions()).map(src)).resource as Patient;
    const b = ok(createResourceMapper(deidOptions()).map(src)).resource as Patient;
    expect(a.birthDate).toBe(NINETY_OR_OLDER_BIRTH_YEAR);
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
  });
});
