import { startStack, type Stack } from '../../stack';
import { seededRandom } from '../../stack/faults';
import { startCliChild } from '../helpers/incremental-child';
import { expireLease, incrementalSettings, mapperFor, tableRows, targetDiff, trimSource } from '../helpers/incremental-stack';

const PREFIX = 'crash';
let stack: Stack;
let env: Record<string, string>;

beforeAll(async () => {
  stack = await startStack({ azurite: true });
  trimSource(stack, 1800);
  env = incrementalSettings(stack, {
    SYNC_TABLE_PREFIX: PREFIX,
    // OPENEMR_SCOPES unset: a read scope per carried type, and the export scopes.
    SYNC_LAG_SECONDS: '5',
    AHDS_BATCH_SIZE: '40',
    AHDS_MAX_CONCURRENCY: '4',
  });
});
afterAll(() => stack?.close());

/** Starts the CLI, SIGKILLs it once AHDS has taken `afterWrites` more writes, and waits for it to die. */
async function runAndKill(afterWrites: number): Promise<{ killedAt: number; output: string }> {
  const start = stack.ahds.stats().writes;
  const cli = startCliChild(env);
  let exited = false;
  void cli.exited.then(() => (exited = true));
  while (!exited && stack.ahds.stats().writes - start < afterWrites) await new Promise((r) => setTimeout(r, 2));
  const killedAt = stack.ahds.stats().writes - start;
  cli.child.kill('SIGKILL');
  const end = await cli.exited;
  expect(end.signal).toBe('SIGKILL'); // it really was killed in the middle, not finished
  return { killedAt, output: cli.output() };
}

test('(b) a CLI run SIGKILLed at random points and restarted loses nothing and duplicates nothing', async () => {
  const random = seededRandom(20260101);
  const carried = mapperFor(env).carriedTypes;
  const total = carried.reduce((n, type) => n + stack.openemr.store.count(type), 0);
  // Two kills at seeded random points of the first (export) run: no watermark may move past them.
  for (let i = 0; i < 2; i++) {
    const afterWrites = 100 + Math.floor(random() * (total - 600));
    const { killedAt } = await runAndKill(afterWrites);
    expect(killedAt).toBeLessThan(total);
    // Each type's window closes on its own once its resources are written (reference order), so a
    // watermark at the kill means that type is whole in the target; the last type's never is.
    const marks = await tableRows(stack, PREFIX, 'watermarks');
    expect(marks.find((m) => m.rowKey === carried.at(-1))).toBeUndefined();
    for (const mark of marks) {
      expect((await targetDiff(stack, mapperFor(env), [mark.rowKey as (typeof carried)[number]])).missing).toEqual([]);
    }
    // The dead process still holds the lease: what SYNC_LEASE_SECONDS would do, done at once.
    await expireLease(stack, PREFIX);
  }
  const last = startCliChild(env);
  const end = await last.exited;
  expect(last.output()).toMatch(/incrementalSync ok: read \d+/);
  expect(end.code).toBe(0);

  // The target equals the mapped source, by id and content hash...
  expect(await targetDiff(stack, mapperFor(env))).toEqual({ missing: [], stale: [], extra: [] });
  // ...and nothing has more versions than it had content changes (one each: the source never changed).
  const versions = new Map<number, number>();
  for (const type of carried) {
    for (const r of await stack.ahds.snapshot(type)) {
      const v = stack.ahds.versionCount(type, r.id!);
      versions.set(v, (versions.get(v) ?? 0) + 1);
    }
  }
  expect([...versions.keys()]).toEqual([1]);
  const marks = await tableRows(stack, PREFIX, 'watermarks');
  expect(marks.map((m) => m.rowKey).sort()).toEqual([...carried].sort());
}, 180_000);
