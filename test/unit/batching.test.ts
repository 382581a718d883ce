import { AdaptiveLimiter } from '../../src/ahds/adaptive-limiter';
import { planBatches } from '../../src/ahds/batching';

const obs = (id: string, n = 0) => ({ resourceType: 'Observation', id, n });

describe('batch planning', () => {
  test('no bundle exceeds the size limit and nothing is lost or reordered', () => {
    const items = Array.from({ length: 1234 }, (_, i) => obs(`o${i}`));
    const batches = planBatches(items, 500);
    expect(batches.map((b) => b.length)).toEqual([500, 500, 234]);
    expect(batches.flat()).toEqual(items);
  });

  test('the AHDS limit of 500 entries cannot be exceeded', () => {
    expect(() => planBatches([obs('a')], 501)).toThrow(RangeError);
  });

  test('no bundle holds two entries for one resource, and the later version is written later', () => {
    const items = [obs('a', 1), obs('b'), obs('a', 2), obs('c'), obs('a', 3)];
    const batches = planBatches(items, 10);
    for (const batch of batches) {
      const keys = batch.map((r) => `${r.resourceType}/${r.id}`);
      expect(new Set(keys).size).toBe(keys.length);
    }
    const bundleOf = (n: number) => batches.findIndex((b) => b.some((r) => r.id === 'a' && r.n === n));
    expect(bundleOf(1)).toBeLessThan(bundleOf(2));
    expect(bundleOf(2)).toBeLessThan(bundleOf(3));
    expect(batches.flat()).toHaveLength(items.length);
  });

  test('the same id under two resource types may share a bundle', () => {
    expect(
      planBatches(
        [
          { resourceType: 'Patient', id: 'x' },
          { resourceType: 'Observation', id: 'x' },
        ],
        10,
      ),
    ).toHaveLength(1);
  });
});

describe('adaptive concurrency', () => {
  test('ramps up one step per window of clean completions, never above the ceiling', () => {
    const limiter = new AdaptiveLimiter(2, 4);
    for (let i = 0; i < 100; i++) limiter.onSuccess();
    expect(limiter.limit).toBe(4);
    expect(limiter.peak).toBe(4);
  });

  test('halves on throttling and never drops below one', () => {
    const limiter = new AdaptiveLimiter(16, 64);
    limiter.onThrottle();
    expect(limiter.limit).toBe(8);
    for (let i = 0; i < 10; i++) limiter.onThrottle();
    expect(limiter.limit).toBe(1);
  });

  test('never runs more tasks at once than its limit', async () => {
    const limiter = new AdaptiveLimiter(3, 3);
    let running = 0;
    let most = 0;
    let done = 0;
    const gates: Array<() => void> = [];
    const tasks = Array.from({ length: 10 }, () =>
      limiter.run(async () => {
        running++;
        most = Math.max(most, running);
        await new Promise<void>((resolve) => gates.push(resolve));
        running--;
        done++;
      }),
    );
    while (done < tasks.length) {
      await new Promise((r) => setImmediate(r));
      gates.splice(0).forEach((open) => open());
    }
    await Promise.all(tasks);
    expect(most).toBe(3);
  });
});

describe('write outcome classification', () => {
  const { classify } = jest.requireActual('../../src/ahds/writer') as typeof import('../../src/ahds/writer');
  const sent = Date.parse('2026-01-01T10:00:05.700Z');
  test('201 is created', () => expect(classify(201, undefined, sent)).toBe('created'));
  test('200 with a lastModified before the request is unchanged', () => {
    expect(classify(200, '2026-01-01T10:00:05.100Z', sent)).toBe('unchanged');
    expect(classify(200, 'Thu, 01 Jan 2026 10:00:04 GMT', sent)).toBe('unchanged');
  });
  test('200 with a lastModified at or after the request is updated, at the precision given', () => {
    expect(classify(200, '2026-01-01T10:00:05.900Z', sent)).toBe('updated');
    expect(classify(200, '2026-01-01T10:00:05Z', sent)).toBe('updated');
    expect(classify(200, 'Thu, 01 Jan 2026 10:00:05 GMT', sent)).toBe('updated');
  });
  test('200 without a readable lastModified counts as updated', () => expect(classify(200, undefined, sent)).toBe('updated'));
});

describe('run tally', () => {
  const { Tally } = jest.requireActual('../../src/sync/tally') as typeof import('../../src/sync/tally');
  test('memory for failures is bounded while the counts stay exact', () => {
    const tally = new Tally();
    for (let i = 0; i < 5000; i++) tally.addFailure({ resourceType: 'Observation', id: `o${i}`, stage: 'write', reason: 'x' });
    tally.addFailure({ resourceType: 'Patient', id: 'p1', stage: 'write', reason: 'x' });
    expect(tally.failureCount).toBe(5001);
    expect(tally.total('failed')).toBe(5001);
    expect(tally.failures).toHaveLength(1000);
    expect(tally.failedPatients.has('p1')).toBe(true);
  });
});
