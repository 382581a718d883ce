import { Writable } from 'node:stream';
import { InvocationContext } from '@azure/functions';
import { syncTimerHandler } from '../../functions/sync-timer';
import { getConnector } from '../../functions/shared/runtime';
import { startStack, type Stack } from '../../stack';
import { main } from '../../src/cli/sync-cli';
import { SYNC_LEASE } from '../../src/sync/incremental';
import { EVENTS, METRICS } from '../../src/telemetry';
import { select, startIngestionCapture, type Envelope, type IngestionCapture } from '../helpers/appinsights-capture';
import { useStack } from '../helpers/functions';
import { trimSource } from '../helpers/incremental-stack';

/**
 * What operators see in Application Insights when runs fail: the real exporter posting to a local
 * ingestion endpoint, the real timer function against the local stack. Every run reports (ok,
 * failed, skipped) with a status and a failure class, and the lag keeps being measured from the
 * last closed window during an outage, so the lag alert can fire.
 */
jest.setTimeout(180_000);

const PREFIX = 'outage';
const APP_NAME = 'func-fhirsync-outage';
let stack: Stack;
let capture: IngestionCapture;
let settings: Record<string, string>;

const props = (e: Envelope) => (e.data.baseData.properties ?? {}) as Record<string, string>;
const measurements = (e: Envelope) => (e.data.baseData.measurements ?? {}) as Record<string, number>;
const timer = { isPastDue: false, schedule: { adjustForDST: false }, scheduleStatus: { last: '', next: '', lastUpdated: '' } };
const runsOf = (envs: Envelope[], runId: string) => select.events(envs, EVENTS.syncRun).filter((e) => props(e).runId === runId);

async function timerRun(invocationId: string): Promise<unknown> {
  const context = new InvocationContext({ invocationId, functionName: 'syncTimer', logHandler: () => undefined });
  try {
    await syncTimerHandler(timer, context);
    return undefined;
  } catch (error) {
    return error;
  } finally {
    await (await getConnector()).telemetry.flush();
  }
}

beforeAll(async () => {
  process.env.APPLICATION_INSIGHTS_NO_STATSBEAT = 'true';
  process.env.APPLICATIONINSIGHTS_STATSBEAT_DISABLED = 'true';
  process.env.APPLICATIONINSIGHTS_SDKSTATS_DISABLED = 'true';
  capture = await startIngestionCapture();
  stack = await startStack({ azurite: true });
  trimSource(stack, 200);
  settings = {
    SYNC_TABLE_PREFIX: PREFIX,
    SYNC_LAG_SECONDS: '5',
    APPLICATIONINSIGHTS_CONNECTION_STRING: capture.connectionString,
    WEBSITE_SITE_NAME: APP_NAME,
  };
  useStack(stack, settings);
});
afterAll(async () => {
  delete process.env.WEBSITE_SITE_NAME;
  await stack?.close();
  await capture?.close();
});

test('an OpenEMR outage: each failed timer run sends its run event (status failed, failure class) and a lag that keeps growing from the last closed window', async () => {
  expect(await timerRun('a1b2c3d4-0000-4000-8000-000000000001')).toBeUndefined();
  let envs = await capture.waitFor((e) => runsOf(e, 'a1b2c3d4-0000-4000-8000-000000000001').length === 1, 30_000);
  const ok = runsOf(envs, 'a1b2c3d4-0000-4000-8000-000000000001')[0]!;
  expect(props(ok)).toMatchObject({ status: 'ok', trigger: 'timer', operation: 'incrementalSync' });
  // The cloud role is the Function App's name (WEBSITE_SITE_NAME), as on the host's own telemetry.
  expect(ok.tags['ai.cloud.role']).toBe(APP_NAME);

  useStack(stack, { ...settings, RETRY_MAX_ATTEMPTS: '1' });
  stack.openemr.faults.configure({ rates: { status503: 1 } });
  const failures: unknown[] = [];
  const ids = ['a1b2c3d4-0000-4000-8000-000000000002', 'a1b2c3d4-0000-4000-8000-000000000003'];
  try {
    for (const id of ids) {
      await new Promise((r) => setTimeout(r, 1100));
      failures.push(await timerRun(id));
    }
  } finally {
    stack.openemr.faults.configure({});
    useStack(stack, settings);
  }
  // The timer function still throws, so the host's retry policy runs it again.
  for (const f of failures) expect(f).toBeInstanceOf(Error);
  envs = await capture.waitFor(
    (e) => ids.every((id) => runsOf(e, id).length === 1) && select.metrics(e, METRICS.freshnessSeconds).length >= 2,
    30_000,
  );
  const failed = ids.map((id) => runsOf(envs, id)[0]!);
  for (const [i, run] of failed.entries()) {
    expect(props(run)).toMatchObject({
      status: 'failed',
      failureClass: 'openemr-unavailable',
      trigger: 'timer',
      operation: 'incrementalSync',
      runId: ids[i],
    });
    expect(run.tags['ai.operation.id']).toBe(ids[i]!.replace(/-/g, ''));
    expect(run.tags['ai.cloud.role']).toBe(APP_NAME);
  }
  // Lag from the watermark, on the connector's clock: at least the configured lag, and growing.
  const lags = failed.map((r) => measurements(r).lagSeconds!);
  expect(lags[0]).toBeGreaterThanOrEqual(5);
  expect(lags[1]).toBeGreaterThan(lags[0]!);
  const lagMetrics = select.metrics(envs, METRICS.lagSeconds).map((m) => m.value);
  expect(lagMetrics).toEqual(expect.arrayContaining([lags[0], lags[1]]));
  const freshness = select.metrics(envs, METRICS.freshnessSeconds).map((m) => m.properties.resourceType);
  // One freshness series per carried type (SYNC_RESOURCE_TYPES), whatever the table knows besides.
  expect(new Set(freshness)).toEqual(new Set((await getConnector()).config.sync.resourceTypes));
});

test('a timer run that finds the lease held reports itself as skipped', async () => {
  const state = (await getConnector()).state!;
  const held = await state.lease.acquire(SYNC_LEASE, 'a-long-manual-run');
  try {
    await timerRun('a1b2c3d4-0000-4000-8000-000000000004');
  } finally {
    if (held.acquired) await held.handle.release();
  }
  const envs = await capture.waitFor((e) => runsOf(e, 'a1b2c3d4-0000-4000-8000-000000000004').length === 1, 30_000);
  const run = runsOf(envs, 'a1b2c3d4-0000-4000-8000-000000000004')[0]!;
  expect(props(run)).toMatchObject({ status: 'skipped', trigger: 'timer' });
  expect(props(run).failureClass).toBeUndefined();
  expect(measurements(run).lagSeconds).toBeGreaterThan(0);
});

test('a CLI run carries one operation id: its run event and every call it made', async () => {
  capture.reset();
  const out: string[] = [];
  const stdout = Object.assign(new Writable({ write: (c: Buffer, _e: string, cb: () => void) => (out.push(c.toString()), cb()) }), {
    isTTY: false,
  });
  stack.openemr.store.advanceClock(10);
  const code = await main(['--json'], { stdout, stderr: stdout, env: { ...process.env }, cwd: '/nonexistent' } as never);
  expect(code).toBe(0);
  const runId = JSON.parse(out.join('').slice(out.join('').indexOf('{'))).runId as string;
  const envs = await capture.waitFor((e) => select.events(e, EVENTS.syncRun).length >= 1 && select.dependencies(e).length >= 2, 30_000);
  const run = select.events(envs, EVENTS.syncRun)[0]!;
  expect(props(run)).toMatchObject({ runId, trigger: 'cli', status: 'ok' });
  const operationIds = new Set([run, ...select.dependencies(envs)].map((e) => e.tags['ai.operation.id']));
  expect(operationIds.size).toBe(1);
  expect([...operationIds][0]).toBe(runId.replace(/-/g, ''));
});
