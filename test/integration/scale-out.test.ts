import { InvocationContext } from '@azure/functions';
import { backfillQueueHandler, planBackfillHandler } from '../../functions/backfill-queue';
import { listDeadLettersHandler, replayDeadLettersHandler } from '../../functions/dead-letters';
import { runStatusHandler } from '../../functions/runs';
import { unmappedCodesHandler } from '../../functions/unmapped-codes';
import { UnmappedCodeReport } from '../../src/mapping';
import { specOf } from '../../src/sync/resource-types';
import { referenceTargets } from '../../src/sync/sync-service';
import { startStack, type Stack } from '../../stack';
import { encodeWorkItem, MAX_DEQUEUE_COUNT, WORK_ITEM_TYPE, workItemId, type WorkItem } from '../../src/sync/work-queue';
import { invoke, useStack } from '../helpers/functions';
import { drainQueue, mapperFor, queueClient, targetDiff, trimSource } from '../helpers/incremental-stack';

const PREFIX = 'scale';
const QUEUE = 'scale-work';
let stack: Stack;
let settings: Record<string, string>;

beforeAll(async () => {
  stack = await startStack({ azurite: true });
  trimSource(stack, 700);
  // Loaded Patients share one lastUpdated second; stamp them an hour apart so there are windows to find.
  const store = stack.openemr.store;
  const ids = store.ids('Patient');
  store.importResources(
    ids.map((id, i) => ({
      ...store.get('Patient', id)!,
      meta: { lastUpdated: new Date(Date.now() - (ids.length - i) * 3600_000).toISOString() },
    })),
  );
  settings = { SYNC_TABLE_PREFIX: PREFIX, SYNC_QUEUE_NAME: QUEUE, SYNC_LAG_SECONDS: '5', OPENEMR_PAGE_SIZE: '7' };
  useStack(stack, settings);
});
afterAll(() => stack?.close());

test('the planner enqueues Patient windows (each reads its Patients and their Observations); queue-triggered workers draining them fill AHDS', async () => {
  const accepted = await invoke(planBackfillHandler, { url: 'backfill', query: { windowDays: '730' } });
  // 202 at once with a run id and where to follow it; planning and work happen on the queue.
  expect(accepted.status).toBe(202);
  const runId = accepted.json.runId;
  expect(accepted.json).toMatchObject({
    runId: expect.any(String),
    kind: 'backfill',
    state: 'queued',
    statusUrl: `http://localhost:7071/api/runs/${runId}`,
  });
  expect(accepted.headers.location).toBe(accepted.json.statusUrl);
  const status = () => invoke(runStatusHandler, { method: 'GET', url: `runs/${runId}`, params: { runId } });
  expect((await status()).json).toMatchObject({ state: 'queued', done: false });

  const queue = queueClient(stack, QUEUE);
  // Messages are base64 JSON, as the Functions host expects them.
  const peeked = await queue.peekMessages({ numberOfMessages: 1 });
  expect(JSON.parse(Buffer.from(peeked.peekedMessageItems[0]!.messageText, 'base64').toString())).toMatchObject({
    kind: 'run',
    operation: 'backfill',
    runId,
    windowSeconds: 730 * 86400,
  });

  const drained = await drainQueue(queue, backfillQueueHandler);
  const final = (await status()).json;
  expect(final).toMatchObject({ state: 'succeeded', done: true, result: { queue: QUEUE } });
  const planned = final.result;
  const patients = stack.openemr.store.count('Patient');
  // Windows of 7 Patients (OPENEMR_PAGE_SIZE), found with one probe each; the last is open at the top.
  expect(planned.patientWindows).toBe(Math.ceil(patients / 7));
  expect(planned.probes).toBe(planned.patientWindows);
  expect(planned.observationWindows).toBe(0);
  const total = planned.patientWindows;
  expect(final.items).toMatchObject({ total, done: total, deadLettered: 0, failed: 0 });
  expect(final.items.read).toBeGreaterThanOrEqual(patients);
  // The run message, then every work item it enqueued.
  expect(drained).toEqual({ handled: total + 1, failedCalls: 0 });
  expect(await targetDiff(stack, mapperFor({ ...stack.env, ...settings }))).toEqual({ missing: [], stale: [], extra: [] });

  // Every unmapped code the workers met is counted, each once per resource: not only a summary's top 50.
  const mapper = mapperFor({ ...stack.env, ...settings });
  const expected = new UnmappedCodeReport();
  for (const type of mapper.carriedTypes) {
    for (const id of stack.openemr.store.ids(type)) {
      const outcome = mapper.map(stack.openemr.store.get(type, id) as never);
      if (outcome.ok) expected.add(outcome.unmapped);
    }
  }
  expect(expected.size).toBeGreaterThan(50);
  const listed = await invoke(unmappedCodesHandler, { method: 'GET', url: 'unmapped-codes', query: { limit: '10000' } });
  const counts = (list: Array<{ system: string; code: string; count: number }>) =>
    list.map((c) => `${c.system}|${c.code}|${c.count}`).sort();
  expect(counts(listed.json.codes)).toEqual(counts(expected.entries()));
});

test('a poison work item is retried up to maxDequeueCount, then ends in the dead letters, and replays once the fault is gone', async () => {
  useStack(stack, { ...settings, RETRY_MAX_ATTEMPTS: '1' });
  const queue = queueClient(stack, QUEUE);
  const item: WorkItem = { kind: 'patients', since: '1970-01-01T00:00:00.000Z', until: new Date(Date.now() + 3600_000).toISOString() };
  await queue.sendMessage(encodeWorkItem(item));
  await queue.sendMessage(Buffer.from('{"kind":"everything"}').toString('base64'));
  stack.openemr.faults.configure({ rates: { status500: 1 }, exemptPaths: [/token/, /metadata/] });
  const drained = await drainQueue(queue, backfillQueueHandler);
  stack.openemr.faults.configure({});
  // Four deliveries threw (the host would redeliver); the fifth recorded the item as a dead letter.
  expect(drained).toEqual({ handled: 2, failedCalls: MAX_DEQUEUE_COUNT - 1 });
  expect((await queue.peekMessages()).peekedMessageItems).toHaveLength(0);

  const listed = await invoke(listDeadLettersHandler, { method: 'GET', url: 'deadletters', query: { resourceType: WORK_ITEM_TYPE } });
  expect(listed.json.items).toHaveLength(2);
  expect(listed.json.items).toContainEqual(
    expect.objectContaining({
      resourceType: WORK_ITEM_TYPE,
      id: workItemId(item),
      attempts: MAX_DEQUEUE_COUNT,
      status: 500,
      stage: 'read',
    }),
  );
  expect(listed.json.items).toContainEqual(
    expect.objectContaining({ resourceType: WORK_ITEM_TYPE, id: expect.stringMatching(/^invalid-/), attempts: 1 }),
  );

  useStack(stack, settings);
  const replay = await invoke(replayDeadLettersHandler, { url: 'deadletters/replay', query: { resourceType: WORK_ITEM_TYPE } });
  expect(replay.status).toBe(202);
  expect(await drainQueue(queue, backfillQueueHandler)).toEqual({ handled: 1, failedCalls: 0 });
  const replayed = await invoke(runStatusHandler, {
    method: 'GET',
    url: `runs/${replay.json.runId}`,
    params: { runId: replay.json.runId },
  });
  expect(replayed.json).toMatchObject({
    kind: 'replay',
    state: 'partial',
    request: { resourceType: WORK_ITEM_TYPE },
    result: { attempted: 2, replayed: 1, stillFailing: 1 },
  });
  const left = await invoke(listDeadLettersHandler, { method: 'GET', url: 'deadletters' });
  expect(left.json.items.map((d: any) => d.id)).toEqual([expect.stringMatching(/^invalid-/)]);
});

test('a work item handed over as an object (the host decodes JSON) is processed like its base64 text', async () => {
  const context = new InvocationContext({
    invocationId: 'obj',
    functionName: 'backfillQueue',
    triggerMetadata: { dequeueCount: 1 },
    logHandler: () => undefined,
  });
  // The window of the 7 Patients updated first, read as the worker reads it: the directory, those
  // Patients and what each carried type (SYNC_RESOURCE_TYPES) holds of them.
  const store = stack.openemr.store;
  const lastUpdated = (id: string) =>
    Date.parse(String((store.get('Patient', id) as { meta?: { lastUpdated?: string } }).meta?.lastUpdated));
  const first = store
    .ids('Patient')
    .map(lastUpdated)
    .sort((a, b) => a - b);
  const until = new Date(Math.floor(first[6]! / 1000) * 1000 + 1000).toISOString();
  const inWindow = new Set(store.ids('Patient').filter((id) => lastUpdated(id) < Date.parse(until)));
  const mapper = mapperFor({ ...stack.env, ...settings });
  // The directory (Organization, Practitioner, Location) is read whole from the window's since, as a run reads it.
  const directory = mapper.carriedTypes.filter((type) => type !== 'Patient' && !specOf(type).read.patientScoped);
  expect(directory.length).toBeGreaterThan(0);
  const directoryRows = directory.reduce((n, type) => n + store.count(type), 0);
  const theirs = mapper.carriedTypes
    .filter((type) => type !== 'Patient' && specOf(type).read.patientScoped)
    .flatMap((type) =>
      store.ids(type).filter((id) => {
        // The element naming the Patient: subject, or patient (Immunization, AllergyIntolerance).
        const element = specOf(type).references.find((r) => r.type === 'Patient')!.element;
        const r = store.get(type, id)!;
        return referenceTargets(r as never, element, 'Patient').some((p) => inWindow.has(p)) && mapper.map(r as never).ok;
      }),
    );
  stack.ahds.resetStats();
  await backfillQueueHandler({ kind: 'patients', since: '1970-01-01T00:00:00.000Z', until }, context);
  expect(stack.ahds.stats().writes).toBe(directoryRows + inWindow.size + theirs.length);
  expect(inWindow.size).toBeGreaterThanOrEqual(7);
});
