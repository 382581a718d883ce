import { syncRunHandler } from '../../functions/sync-run';
import { syncTimerHandler } from '../../functions/sync-timer';
import { Writable } from 'node:stream';
import { InvocationContext } from '@azure/functions';
import { startStack, type Stack } from '../../stack';
import type { SupportedType } from '../../stack/openemr';
import { loadConfig } from '../../src/config/load';
import { TableLeaseManager } from '../../src/state';
import { main } from '../../src/cli/sync-cli';
import { invoke, useStack } from '../helpers/functions';
import { expireLease, table, trimSource } from '../helpers/incremental-stack';

const PREFIX = 'lease';
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ azurite: true });
  trimSource(stack, 300);
  useStack(stack, { SYNC_TABLE_PREFIX: PREFIX, SYNC_LAG_SECONDS: '5' });
});
afterAll(() => stack?.close());

const leases = (now: () => number, seconds = 120) =>
  new TableLeaseManager(
    async () => {
      const t = table(stack, PREFIX, 'leases');
      await t.createTable();
      return t;
    },
    seconds,
    now,
  );

test('(c) three runs started at once (HTTP, timer, CLI): exactly one writes the window, the others are skipped and write nothing', async () => {
  stack.ahds.resetStats();
  const out: string[] = [];
  const cliIo = {
    stdout: Object.assign(new Writable({ write: (c: Buffer, _e: string, cb: () => void) => (out.push(c.toString()), cb()) }), {
      isTTY: false,
    }),
    stderr: process.stderr,
    env: process.env,
    cwd: '/nonexistent',
  };
  const timerLogs: string[] = [];
  const timerContext = new InvocationContext({
    invocationId: 'timer-1',
    functionName: 'syncTimer',
    logHandler: (_l, ...a) => timerLogs.push(a.join(' ')),
  });
  const timer = { isPastDue: false, schedule: { adjustForDST: false }, scheduleStatus: { last: '', next: '', lastUpdated: '' } };
  const [http, , cliCode] = await Promise.all([
    invoke(syncRunHandler, { url: 'sync/run' }),
    syncTimerHandler(timer, timerContext),
    main([], cliIo as never),
  ]);

  const skippedTimer = timerLogs.some((l) => /^skipped: another run holds the lease until /.test(l));
  const skippedHttp = http.status === 409;
  const skippedCli = cliCode === 3;
  expect([skippedHttp, skippedTimer, skippedCli].filter(Boolean)).toHaveLength(2);
  if (skippedHttp) {
    expect(http.json).toMatchObject({
      resourceType: 'OperationOutcome',
      issue: [{ code: 'conflict', diagnostics: expect.stringMatching(/^skipped: another run holds the lease until \d{4}-/) }],
    });
  }
  // Every resource was written exactly once: the winner's writes are all AHDS saw.
  const carried = loadConfig({ ...stack.env, SYNC_TABLE_PREFIX: PREFIX }).sync.resourceTypes as SupportedType[];
  const total = carried.reduce((n, type) => n + stack.openemr.store.count(type), 0);
  expect(stack.ahds.stats().writes).toBe(total);
  expect(stack.ahds.stats().versionsCreated).toBe(total);
});

test('(c) of ten runners racing for the lease at once, ETag-conditional writes let exactly one win', async () => {
  const manager = leases(Date.now);
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => manager.acquire('race', `runner-${i}`)));
  const winners = results.filter((r) => r.acquired);
  expect(winners).toHaveLength(1);
  const holder = (winners[0] as { handle: { owner: string } }).handle.owner;
  for (const r of results) if (!r.acquired) expect(r.holder.owner).toBe(holder);
  // And again once it has expired: one winner among the racers, never two.
  const later = leases(() => Date.now() + 121_000);
  const again = await Promise.all(Array.from({ length: 10 }, (_, i) => later.acquire('race', `late-${i}`)));
  expect(again.filter((r) => r.acquired)).toHaveLength(1);
});

test('(c) a lease left by a crashed holder blocks until SYNC_LEASE_SECONDS pass, then the next run takes it; the old holder cannot renew', async () => {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const manager = leases(() => now, 120);
  const crashed = await manager.acquire('crash', 'crashed-run');
  expect(crashed.acquired).toBe(true);
  now += 60_000;
  const early = await manager.acquire('crash', 'next-run');
  expect(early).toEqual({ acquired: false, holder: { owner: 'crashed-run', expiresAt: '2026-01-01T00:02:00.000Z' } });
  now += 61_000;
  const taken = await manager.acquire('crash', 'next-run');
  expect(taken.acquired).toBe(true);
  if (!crashed.acquired) return;
  expect(await crashed.handle.renew()).toBe(false);
  expect(crashed.handle.lost).toBe(true);
  await expect(crashed.handle.assertHeld()).rejects.toThrow(/lost to another runner/);
});

test("(c) an HTTP run meets a crashed runner's lease with 409 and runs once it has expired", async () => {
  const manager = leases(Date.now);
  const crashed = await manager.acquire('sync', 'crashed-cli-run');
  expect(crashed.acquired).toBe(true);
  stack.ahds.resetStats();
  const blocked = await invoke(syncRunHandler, { url: 'sync/run' });
  expect(blocked.status).toBe(409);
  expect(stack.ahds.stats().writes).toBe(0);
  await expireLease(stack, PREFIX);
  const ran = await invoke(syncRunHandler, { url: 'sync/run' });
  expect(ran.status).toBe(200);
});
