import type { Resource } from '@medplum/fhirtypes';
import { createResourceMapper } from '../../src/mapping';
import { passesFastCheck } from '../../src/mapping/fast-validation';
import { ensureDefinitionsIndexed } from '../../src/mapping/validate';
import { DEFAULT_OPTIONS, sampleObservations, samplePatients } from '../fixtures/mapping/load';
import { baseResources, medplumAccepts } from '../fixtures/mapping/mutants';

beforeAll(() => ensureDefinitionsIndexed('connector'));

describe('fast validation: a quick "valid" that Medplum always agrees with', () => {
  const bases = baseResources();

  test('every resource the connector reads or writes in the sample passes it (so syncs skip the slow crawl)', () => {
    const all = [...samplePatients(), ...sampleObservations()];
    const mapper = createResourceMapper(DEFAULT_OPTIONS);
    const mapped = all.map((r) => mapper.map(r)).flatMap((m) => (m.ok ? [m.resource as Resource] : []));
    expect(mapped.length).toBe(all.length);
    expect(mapped.filter((r) => !passesFastCheck(r)).map((r) => `${r.resourceType}/${r.id}`)).toEqual([]);
    expect(bases.filter((r) => !passesFastCheck(r)).map((r) => `${r.resourceType}/${r.id}`)).toEqual([]);
    expect(bases.every(medplumAccepts)).toBe(true);
  });
  // The differential comparison over ~24k broken variants is in test/differential/ (slow: kept out of test:unit).
});
