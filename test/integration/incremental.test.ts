import { randomUUID } from 'node:crypto';
import { reconcileHttpHandler } from '../../functions/reconcile';
import { syncRunHandler } from '../../functions/sync-run';
import { unmappedCodesHandler } from '../../functions/unmapped-codes';
import { getConnector } from '../../functions/shared/runtime';
import { startStack, type Stack } from '../../stack';
import type { SupportedType } from '../../stack/openemr';
import { incrementalSync } from '../../src/sync/incremental';
import { completeRun, invoke, useStack } from '../helpers/functions';
import { mapperFor, tableRows, targetDiff, trimSource } from '../helpers/incremental-stack';

const PREFIX = 'inc';
let stack: Stack;
let settings: Record<string, string>;

const run = (query: Record<string, string> = {}) => invoke(syncRunHandler, { url: 'sync/run', query });
const watermark = async (type: string) =>
  (await tableRows(stack, PREFIX, 'watermarks')).find((r) => r.rowKey === type)?.until as string | undefined;
const diff = async () => targetDiff(stack, mapperFor({ ...stack.env, ...settings }));
/** Resources of the carried types at the source: what a run over everything reads. */
const sourceCount = (types: readonly string[]) => types.reduce((n, t) => n + stack.openemr.store.count(t as SupportedType), 0);

beforeAll(async () => {
  stack = await startStack({ azurite: true });
  trimSource(stack, 800);
  settings = {
    SYNC_TABLE_PREFIX: PREFIX,
    // OPENEMR_SCOPES unset: a read scope per carried type (the default types) and the export scopes.
    SYNC_LAG_SECONDS: '5',
    SYNC_OVERLAP_SECONDS: '300',
    AHDS_BATCH_SIZE: '100',
  };
  useStack(stack, settings);
});
afterAll(() => stack?.close());
beforeEach(() => {
  stack.openemr.faults.configure({});
  stack.ahds.faults.configure({});
});

test('the first run reads every exported type through one $export?_since and closes the windows at OpenEMR now minus the lag', async () => {
  const carried = (await getConnector()).config.sync.resourceTypes;
  // Every type but those read whole on a first run (pre-1970 dates, which an export from the epoch
  // never carries): resource-types.ts connectorExports / exportsWindows.
  const searched = ['DocumentReference', 'DiagnosticReport'];
  const exported = carried.filter((t) => !searched.includes(t));
  expect(exported.length).toBeGreaterThan(2);
  stack.openemr.resetStats();
  const before = stack.openemr.store.now();
  const answer = await run();
  const after = stack.openemr.store.now();
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({ operation: 'incrementalSync', status: 'ok', failed: 0 });
  for (const type of carried)
    expect([type, answer.json.windows[type]]).toMatchObject([type, { via: exported.includes(type) ? 'export' : 'search', closed: true }]);
  const routes = stack.openemr.stats().byRoute;
  expect(routes['GET /fhir/$export']).toBe(1);
  expect(routes['GET /fhir/Binary/{id}']).toBe(exported.length);
  // No exported type is searched (Patient's listing is the roster of the types still read per Patient).
  for (const type of exported.filter((t) => t !== 'Patient')) expect([type, routes[`GET /fhir/${type}`] ?? 0]).toEqual([type, 0]);
  expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });
  // The upper bound is OpenEMR's clock minus SYNC_LAG_SECONDS, compared as instants (the server speaks -05:00).
  const until = Date.parse((await watermark('Patient'))!);
  expect(until).toBeGreaterThanOrEqual(before - 5_000 - 1_000);
  expect(until).toBeLessThanOrEqual(after - 5_000);
  expect(await watermark('Observation')).toBe(await watermark('Patient'));
});

test('(f) an incremental run with nothing changed makes one request per carried type (and one for the clock) to OpenEMR and none to AHDS', async () => {
  const connector = await getConnector(); // the token is cached from the previous run, as in a warm worker
  const types = connector.config.sync.resourceTypes;
  stack.openemr.resetStats();
  stack.ahds.resetStats();
  const answer = await run();
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({ read: 0, created: 0, updated: 0, failed: 0 });
  // GET /metadata (OpenEMR's clock), then one short `_lastUpdated` window per carried type.
  expect(stack.openemr.stats()).toEqual({
    requests: 1 + types.length,
    byRoute: { 'GET /fhir/metadata': 1, ...Object.fromEntries(types.map((t) => [`GET /fhir/${t}`, 1])) },
  });
  expect(stack.ahds.stats()).toMatchObject({ requests: 0, writes: 0, versionsCreated: 0 });
});

test('(a) changes made between runs all arrive, including one stamped just before the previous upper bound', async () => {
  const store = stack.openemr.store;
  const previousUntil = Date.parse((await watermark('Patient'))!);
  const [firstPatient, secondPatient] = store.ids('Patient');
  const template = store.get('Patient', firstPatient!) as Record<string, any>;
  const observationTemplate = store.get('Observation', store.ids('Observation')[0]!) as Record<string, any>;

  // A changed Patient, a new Patient, a new Observation: stamped with OpenEMR's "now".
  store.put({ ...template, name: [{ family: 'Changedname', given: ['Ann'] }] } as never);
  const newPatientId = randomUUID();
  store.put({ ...template, id: newPatientId, name: [{ family: 'Newcomer', given: ['Bo'] }] } as never);
  const newObservationId = randomUUID();
  store.put({
    ...observationTemplate,
    id: newObservationId,
    subject: { reference: `Patient/${secondPatient}` },
    valueQuantity: { value: 42, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
  } as never);
  // A late commit: a change that becomes visible now but is stamped 2 s before the previous upper
  // bound (a transaction that started before the last run cut its window).
  const lateId = randomUUID();
  const lateStamp = new Date(previousUntil - 2000).toISOString();
  store.importResources([
    { ...observationTemplate, id: lateId, subject: { reference: `Patient/${secondPatient}` }, meta: { lastUpdated: lateStamp } } as never,
  ]);

  // OpenEMR's clock moves on past the lag; ours does not: windows follow the server's clock.
  // (The stand-in's clock also ages client assertions: keep the total moves under OpenEMR's 5 min.)
  store.advanceClock(10);
  const answer = await run();
  expect(answer.status).toBe(200);
  expect(answer.json.failed).toBe(0);
  expect(answer.json.windows.Patient).toMatchObject({
    via: 'search',
    closed: true,
    since: new Date(previousUntil - 300_000).toISOString(),
  });
  expect(answer.json.byType.Patient.created).toBe(1);
  expect(answer.json.byType.Patient.updated).toBe(1);
  expect(answer.json.byType.Observation.created).toBe(2);
  for (const [type, id] of [
    ['Patient', newPatientId],
    ['Patient', firstPatient],
    ['Observation', newObservationId],
    ['Observation', lateId],
  ] as const) {
    expect(await stack.ahds.read(type, id!)).toBeDefined();
  }
  expect(((await stack.ahds.read('Patient', firstPatient!)) as any).name[0].family).toBe('Changedname');
  expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });

  // The next run's window overlaps this one: the same resources are written again and counted
  // unchanged, and AHDS makes no new version.
  store.advanceClock(10);
  stack.ahds.resetStats();
  const again = await run();
  expect(again.json).toMatchObject({ created: 0, updated: 0, failed: 0 });
  expect(again.json.unchanged).toBe(4);
  expect(stack.ahds.stats().versionsCreated).toBe(0);
});

test('(a) a lab corrected without a new lastUpdated is missed by the incremental run and repaired by reconciliation', async () => {
  const store = stack.openemr.store;
  const labId = store.ids('Observation')[5]!;
  store.labCorrection(labId);
  store.advanceClock(10);
  const answer = await run();
  expect(answer.status).toBe(200);
  expect(answer.json.updated).toBe(0);
  expect((await diff()).stale).toEqual([`Observation/${labId}`]);

  const accepted = await invoke(reconcileHttpHandler, { url: 'reconcile' });
  const status = await completeRun(stack, accepted);
  expect(status).toMatchObject({ kind: 'reconcile', state: 'succeeded', done: true });
  const reconciled = { json: status.result };
  expect(reconciled.json.byType.Observation).toMatchObject({ stale: 1, missing: 0, deletedAtSource: 0 });
  expect(reconciled.json.byType.Patient).toMatchObject({ stale: 0, missing: 0 });
  expect(reconciled.json.written).toMatchObject({ updated: 1, created: 0, failed: 0 });
  expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });
  expect(((await stack.ahds.read('Observation', labId)) as any).status).toBe('corrected');
});

test('reconciliation reports deletes at source by default and deletes them in AHDS when RECONCILE_DELETE_MODE=delete', async () => {
  const store = stack.openemr.store;
  const goneId = store.ids('Observation')[7]!;
  store.delete('Observation', goneId);
  const reported = { json: (await completeRun(stack, await invoke(reconcileHttpHandler, { url: 'reconcile' }))).result };
  expect(reported.json).toMatchObject({ deleteMode: 'report-only' });
  expect(reported.json.byType.Observation).toMatchObject({ deletedAtSource: 1, deleted: 0, stale: 0, missing: 0 });
  expect(await stack.ahds.read('Observation', goneId)).toBeDefined();

  useStack(stack, { ...settings, RECONCILE_DELETE_MODE: 'delete' });
  try {
    const deleted = { json: (await completeRun(stack, await invoke(reconcileHttpHandler, { url: 'reconcile' }))).result };
    expect(deleted.json.byType.Observation).toMatchObject({ deletedAtSource: 1, deleted: 1 });
    expect(await stack.ahds.read('Observation', goneId)).toBeUndefined();
    expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });
  } finally {
    useStack(stack, settings);
  }
});

test('an OpenEMR outage leaves the watermark where it was; the next run closes the window and nothing is lost', async () => {
  useStack(stack, { ...settings, RETRY_MAX_ATTEMPTS: '2' });
  const before = await watermark('Observation');
  const store = stack.openemr.store;
  const id = randomUUID();
  store.put({ ...(store.get('Observation', store.ids('Observation')[1]!) as object), id } as never);
  store.advanceClock(10);
  stack.openemr.faults.configure({ rates: { status503: 1 }, retryAfterMs: 5, exemptPaths: [/metadata/, /token/] });
  const down = await run();
  expect(down.status).toBe(503);
  expect(down.json.issue[0].diagnostics).toMatch(/^OpenEMR is unavailable/);
  expect(await watermark('Observation')).toBe(before);
  expect(await watermark('Patient')).toBe(before);

  stack.openemr.faults.configure({});
  const back = await run();
  expect(back.status).toBe(200);
  expect(Date.parse((await watermark('Observation'))!)).toBeGreaterThan(Date.parse(before!));
  expect(await stack.ahds.read('Observation', id)).toBeDefined();
  useStack(stack, settings);
});

test('a long window read by search (export off) reads Observations per Patient, never with _count, and misses nothing', async () => {
  const connector = await getConnector();
  stack.openemr.resetStats();
  const outcome = await incrementalSync(connector, { useExport: false }).run({ trigger: 'cli', since: '1970-01-01T00:00:00Z' });
  expect(outcome.skipped).toBe(false);
  if (outcome.skipped) return;
  expect(outcome.value.byType.Observation!.unchanged + outcome.value.byType.Observation!.created).toBe(
    stack.openemr.store.count('Observation'),
  );
  expect(outcome.value.read).toBe(sourceCount(connector.config.sync.resourceTypes));
  // One Observation search per Patient (plus nothing else): bounded answers, no _count.
  expect(stack.openemr.stats().byRoute['GET /fhir/Observation']).toBe(stack.openemr.store.count('Patient'));
});

test('GET /api/unmapped-codes lists the codings no map covered, counted over runs', async () => {
  const answer = await invoke(unmappedCodesHandler, { method: 'GET', url: 'unmapped-codes' });
  expect(answer.status).toBe(200);
  expect(answer.json.count).toBeGreaterThan(0);
  expect(answer.json.codes[0]).toEqual({
    system: expect.any(String),
    code: expect.any(String),
    display: expect.any(String),
    count: expect.any(Number),
    lastSeen: expect.any(String),
  });
});

test('a full sync over HTTP answers 202 with a run id and a status URL; the status ends with the run summary', async () => {
  const accepted = await run({ full: 'true' });
  expect(accepted.status).toBe(202);
  expect(accepted.json).toMatchObject({
    kind: 'sync',
    state: 'queued',
    request: { full: true },
    statusUrl: expect.stringContaining(`/api/runs/${accepted.json.runId}`),
  });
  const status = await completeRun(stack, accepted);
  expect(status).toMatchObject({
    kind: 'sync',
    state: 'succeeded',
    done: true,
    startedAt: expect.any(String),
    finishedAt: expect.any(String),
  });
  expect(status.result).toMatchObject({ runId: accepted.json.runId, operation: 'incrementalSync', status: 'ok', failed: 0 });
  expect(status.result.read).toBe(sourceCount((await getConnector()).config.sync.resourceTypes));
  expect(status.result.windows.Observation.closed).toBe(true);
  expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });
});

test('a long run asked while another holds the lease answers 409 at once, and a run that fails says why in its status', async () => {
  const { getConnector } = await import('../../functions/shared/runtime');
  const { SYNC_LEASE } = await import('../../src/sync/incremental');
  const state = (await getConnector()).state!;
  const held = await state.lease.acquire(SYNC_LEASE, 'someone-else');
  try {
    const refused = await invoke(reconcileHttpHandler, { url: 'reconcile' });
    expect(refused.status).toBe(409);
    expect(refused.json).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'conflict' }] });
  } finally {
    if (held.acquired) await held.handle.release();
  }
  const accepted = await run({ since: '2020-01-01' });
  stack.openemr.faults.configure({ rates: { status503: 1 }, exemptPaths: [/token/] });
  useStack(stack, { ...settings, RETRY_MAX_ATTEMPTS: '1' });
  try {
    const status = await completeRun(stack, accepted);
    expect(status).toMatchObject({
      kind: 'sync',
      state: 'failed',
      done: true,
      request: { since: '2020-01-01' },
      error: { failureClass: 'openemr-unavailable', message: expect.stringMatching(/^OpenEMR/) },
    });
  } finally {
    stack.openemr.faults.configure({});
    useStack(stack, settings);
  }
});

test('dates and instants are strict: no roll-over, nothing after the value, never echoed', async () => {
  for (const since of [
    '2020-02-30T00:00:00Z',
    '2021-02-29',
    '2020-01-01T24:00:00Z',
    '2020-01-01T00:00:00Z\u0000',
    '2020-01-01T00:00:00Z ',
    '2020-01-01T00:00:00',
    '12/31/2025',
    '2020-1-1',
  ]) {
    const answer = await run({ since });
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'invalid' }] });
    expect(answer.body).not.toContain(since);
  }
  const { parseInstant } = await import('../../src/config/instant');
  expect(parseInstant('2024-02-29')).toBe(Date.UTC(2024, 1, 29));
  expect(parseInstant('2024-02-29T23:59:59.123+02:00')).toBe(Date.UTC(2024, 1, 29, 21, 59, 59, 123));
});

test('bad query parameters answer 400 with an OperationOutcome before anything runs', async () => {
  expect((await run({ since: 'yesterday' })).status).toBe(400);
  expect((await run({ full: 'maybe' })).status).toBe(400);
  expect((await run({ since: '2025-01-01T00:00:00Z', full: 'true' })).json.resourceType).toBe('OperationOutcome');
});

test('an incremental run reports its lag on the run event and the dead letters waiting for replay', async () => {
  const { RecordingTelemetry } = await import('../../src/telemetry/telemetry');
  const { METRICS } = await import('../../src/telemetry/names');
  const telemetry = new RecordingTelemetry();
  useStack(stack, settings, { telemetry });
  const answer = await invoke(syncRunHandler, { url: 'sync/run' });
  expect(answer.status).toBe(200);
  const run = telemetry.calls.find((c) => c.kind === 'run')!.data as { lagSeconds?: number };
  expect(run.lagSeconds).toBeGreaterThanOrEqual(Number(settings.SYNC_LAG_SECONDS ?? 60));
  const pending = telemetry.calls.filter((c) => c.kind === 'gauge').map((c) => c.data as { name: string; value: number });
  expect(pending).toContainEqual(expect.objectContaining({ name: METRICS.deadLettersPending, value: expect.any(Number) }));
  expect(pending.filter((g) => g.name === METRICS.lagSeconds)).toEqual([]); // sent once, with the run event
  useStack(stack, settings);
});
