import { addRunCounts, type UnmappedCodeStore } from '../../src/state/unmapped-codes';

const counts = (entries: Array<{ system: string; code: string; count: number }>) => ({ size: entries.length, entries: () => entries });

describe("addRunCounts: a run's unmapped-code counts into the store", () => {
  test('every count goes to the store; nothing is asked of it when there are none', async () => {
    const added: unknown[] = [];
    const store: UnmappedCodeStore = { add: async (e) => void added.push(...e), list: async () => [] };
    await addRunCounts(store, counts([]));
    expect(added).toEqual([]);
    await addRunCounts(
      store,
      counts([
        { system: 's', code: 'a', count: 2 },
        { system: 's', code: 'b', count: 1 },
      ]),
    );
    expect(added).toEqual([
      { system: 's', code: 'a', count: 2 },
      { system: 's', code: 'b', count: 1 },
    ]);
  });

  test('a store that fails does not fail the run, and the loss is logged by error name only', async () => {
    const store: UnmappedCodeStore = {
      add: async () => {
        throw Object.assign(new Error('Unmapped-code count not stored after 20 concurrent updates.'), { name: 'RestError' });
      },
      list: async () => [],
    };
    const log: string[] = [];
    await expect(addRunCounts(store, counts([{ system: 's', code: 'a', count: 1 }]), (m) => log.push(m))).resolves.toBeUndefined();
    expect(log).toEqual(['Unmapped-code counts could not be stored (RestError).']);
  });

  test('without a store (no storage configured) there is nothing to do', async () => {
    await expect(addRunCounts(undefined, counts([{ system: 's', code: 'a', count: 1 }]))).resolves.toBeUndefined();
  });
});
