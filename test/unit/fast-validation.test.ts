import type { Resource } from '@medplum/fhirtypes';
import { createResourceMapper } from '../../src/mapping';
import { passesFastCheck } from '../../src/mapping/fast-validation';
import { ensureDefinitionsIndexed } from '../../src/mapping/validate';
import { DEFAULT_OPTIONS, sampleObservations, samplePatients } from '../fixtures/mapping/load';
import { baseResources, medplumAccepts, mutantsOf } from '../fixtures/mapping/mutants';

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

  test('nothing it passes is refused by Medplum, across thousands of broken variants of real resources', () => {
    let passed = 0;
    let refusedByMedplum = 0;
    const disagreements: string[] = [];
    let total = 0;
    for (const base of bases) {
      for (const mutant of mutantsOf(base)) {
        total++;
        const medplum = medplumAccepts(mutant);
        if (!medplum) refusedByMedplum++;
        if (!passesFastCheck(mutant)) continue;
        passed++;
        if (!medplum) disagreements.push(JSON.stringify(mutant).slice(0, 300));
      }
    }
    expect(disagreements).toEqual([]);
    // The comparison has teeth: many variants are refused, and many harmless ones still pass quickly.
    expect(total).toBeGreaterThan(10_000);
    expect(refusedByMedplum).toBeGreaterThan(total / 4);
    expect(passed).toBeGreaterThan(total / 10);
  });
});
