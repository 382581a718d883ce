/**
 * Slow differential test (about half a minute on 2 cores): kept out of the fast `npm run test:unit`
 * tier; `npm test` runs it.
 */
import { passesFastCheck } from '../../src/mapping/fast-validation';
import { ensureDefinitionsIndexed } from '../../src/mapping/validate';
import { baseResources, medplumAccepts, mutantsOf } from '../fixtures/mapping/mutants';

beforeAll(() => ensureDefinitionsIndexed('connector'));

describe('fast validation against Medplum, differentially', () => {
  const bases = baseResources();

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
