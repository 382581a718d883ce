import { ReadAhead, readAheadLimits } from '../../src/sync/read-ahead';
import { ReadSlots } from '../../src/sync/read-slots';

/** A reader whose answers the test releases by hand, recording what was asked and how many were open. */
function manualReader(sizes: Record<string, number>) {
  const asked: string[] = [];
  const pending = new Map<string, { resolve: (v: string[]) => void; reject: (e: Error) => void }>();
  let open = 0;
  let mostOpen = 0;
  const read = (id: string): Promise<string[]> => {
    asked.push(id);
    open++;
    mostOpen = Math.max(mostOpen, open);
    return new Promise<string[]>((resolve, reject) => pending.set(id, { resolve, reject })).finally(() => open--);
  };
  const answer = async (id: string): Promise<void> => {
    pending.get(id)!.resolve(Array.from({ length: sizes[id] ?? 1 }, (_, i) => `${id}-${i}`));
    await settle();
  };
  const fail = async (id: string): Promise<void> => {
    pending.get(id)!.reject(new Error(`read ${id} failed`));
    await settle();
  };
  return { read, asked, answer, fail, mostOpen: () => mostOpen };
}

const settle = () => new Promise((r) => setImmediate(r));
const ids = (n: number) => Array.from({ length: n }, (_, i) => `p${i}`);

describe('ReadAhead: Observations of a page of Patients, read ahead of the consumer', () => {
  test('at two reads: 4 answers ahead always, up to 10 while fewer than 1,000 resources wait', () => {
    expect(readAheadLimits(2)).toEqual({ minAhead: 4, maxAhead: 10, maxWaiting: 1000 });
  });

  test('before any answer says how big answers are, only the minimum is requested', async () => {
    const r = manualReader({});
    new ReadAhead(ids(20), r.read, new ReadSlots(10), { minAhead: 4, maxAhead: 10, maxWaiting: 1000 });
    await settle();
    expect(r.asked).toEqual(ids(4));
    await r.answer('p0');
    expect(r.asked).toEqual(ids(10));
  });

  test('answers come in order, and never more reads are open than the slots allow', async () => {
    const r = manualReader({});
    const ahead = new ReadAhead(ids(6), r.read, new ReadSlots(2), { minAhead: 6, maxAhead: 6, maxWaiting: 1000 });
    const taken: string[][] = [];
    const consumer = (async () => {
      for (let i = 0; i < 6; i++) taken.push(await ahead.next());
    })();
    await settle();
    // Released out of order; each is open by the time it is answered (two slots).
    for (const id of ['p1', 'p0', 'p3', 'p2', 'p5', 'p4']) await r.answer(id);
    await consumer;
    expect(taken.map((t) => t[0])).toEqual(['p0-0', 'p1-0', 'p2-0', 'p3-0', 'p4-0', 'p5-0']);
    expect(r.mostOpen()).toBe(2);
  });

  test('while the consumer is held up (waiting on AHDS), small answers keep the reads going up to maxAhead', async () => {
    const r = manualReader({});
    const ahead = new ReadAhead(ids(20), r.read, new ReadSlots(2), { minAhead: 4, maxAhead: 10, maxWaiting: 1000 });
    for (let i = 0; i < 12; i++) if (r.asked.includes(`p${i}`)) await r.answer(`p${i}`);
    // Nothing taken yet: 10 requested ahead, then it stops.
    expect(r.asked).toEqual(ids(10));
    expect((await ahead.next())[0]).toBe('p0-0');
    expect(r.asked).toEqual(ids(11));
  });

  test('big answers waiting stop the look-ahead at minAhead, so memory stays bounded', async () => {
    const sizes = Object.fromEntries(ids(20).map((id) => [id, 600]));
    const r = manualReader(sizes);
    const ahead = new ReadAhead(ids(20), r.read, new ReadSlots(2), { minAhead: 4, maxAhead: 10, maxWaiting: 1000 });
    for (let i = 0; i < 6; i++) if (r.asked.includes(`p${i}`)) await r.answer(`p${i}`);
    // 4 answers of 600 wait: no more requested until one is taken.
    expect(r.asked).toEqual(ids(4));
    expect(await ahead.next()).toHaveLength(600);
    expect(r.asked).toEqual(ids(5));
  });

  test('a failed read throws when its turn comes, not before', async () => {
    const r = manualReader({});
    const ahead = new ReadAhead(ids(3), r.read, new ReadSlots(2), readAheadLimits(2));
    await r.fail('p1');
    await r.answer('p0');
    await expect(ahead.next()).resolves.toEqual(['p0-0']);
    await expect(ahead.next()).rejects.toThrow('read p1 failed');
  });
});
