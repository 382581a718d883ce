import { KNOWN_RESOURCE_TYPES, RESOURCE_TYPES, rankGroups, specOf } from '../../src/sync/resource-types';

// The sync loop (SyncService.writeRanks) flushes between ranks and maps a rank only after the one
// below it is written: that keeps references in order only if the table holds these rules.
describe('the resource-type table fits the rank loop', () => {
  test('every carried reference points at a type of a strictly lower rank', () => {
    for (const spec of RESOURCE_TYPES)
      for (const ref of spec.references)
        expect({ from: spec.type, to: ref.type, lower: specOf(ref.type).rank < spec.rank }).toMatchObject({ lower: true });
  });

  test('types read whole rank below Patient, types read per Patient above it', () => {
    const patient = specOf('Patient').rank;
    for (const spec of RESOURCE_TYPES.filter((t) => t.type !== 'Patient'))
      expect({ type: spec.type, side: spec.read.patientScoped ? spec.rank > patient : spec.rank < patient }).toMatchObject({ side: true });
  });

  test('rankGroups groups the configured types by rank, in reference order', () => {
    expect(rankGroups(['Observation', 'Patient', 'Encounter', 'DiagnosticReport', 'Condition'])).toEqual([
      ['Patient'],
      ['Encounter'],
      ['Condition', 'Observation'],
      ['DiagnosticReport'],
    ]);
    expect(rankGroups(['Location', 'Patient', 'Practitioner', 'Organization'])).toEqual([
      ['Organization', 'Practitioner'],
      ['Location'],
      ['Patient'],
    ]);
    expect(rankGroups(KNOWN_RESOURCE_TYPES).flat()).toHaveLength(KNOWN_RESOURCE_TYPES.length);
  });
});
