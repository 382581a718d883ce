import { randomUUID } from 'node:crypto';
import { loadConfig } from '../../src/config/load';
import { createConnector } from '../../src/connector';
import { createStateStores, GuardedDeadLetterStore } from '../../src/state';
import { DeadLetterStorageError } from '../../src/state/errors';
import { MemoryDeadLetterStore, type DeadLetter } from '../../src/sync/dead-letters';
import { incrementalSync } from '../../src/sync/incremental';
import { replayDeadLetters } from '../../src/sync/replay';
import { directoryTypes } from '../../src/sync/resource-types';
import { workDepsOf } from '../../src/sync/work-queue';
import { startStack, type Stack } from '../../stack';
import { incrementalSettings, tableRows, trimSource } from '../helpers/incremental-stack';

const PREFIX = 'dls';
const plantedId = randomUUID();
let stack: Stack;
let settings: Record<string, string>;

/** A dead-letter table that is down until told otherwise (as Azure Storage answers: a RestError). */
class FlakyDeadLetterStore extends MemoryDeadLetterStore {
  down = true;
  override async record(items: DeadLetter[]): Promise<void> {
    if (this.down) throw Object.assign(new Error('The table service is unavailable.'), { name: 'RestError', statusCode: 503 });
    return super.record(items);
  }
}

beforeAll(async () => {
  stack = await startStack({ azurite: true });
  trimSource(stack, 100);
  settings = incrementalSettings(stack, { SYNC_TABLE_PREFIX: PREFIX, SYNC_LAG_SECONDS: '5' });
  const store = stack.openemr.store;
  // A Patient the mapper's validation refuses: it must become a dead letter.
  store.put({ ...(store.get('Patient', store.ids('Patient')[0]!) as object), id: plantedId, gender: 'robot' } as never);
});
afterAll(() => stack?.close());

async function connectorWith(deadLetters: FlakyDeadLetterStore) {
  const config = loadConfig(settings);
  const state = createStateStores(
    config,
    () => {
      throw new Error('Azurite is reached with a connection string, not a credential');
    },
    { deadLetters, warn: () => undefined },
  );
  return createConnector(config, { state });
}

/** Shared by the tests in order: the dead letters of the planted Patient carry over. */
const deadLetters = new FlakyDeadLetterStore();

test('a run whose dead letters cannot be stored leaves its windows open from the lost letter on; once they can be, a run closes them', async () => {
  const connector = await connectorWith(deadLetters);
  await expect(incrementalSync(connector).run({ trigger: 'cli' })).rejects.toBeInstanceOf(DeadLetterStorageError);
  // The directory (read whole before any Patient) was written with nothing lost: its windows close.
  // The Patient whose letter could not be stored, and every type after it, stay open.
  const directory = directoryTypes(connector.config.sync.resourceTypes);
  expect(directory.length).toBeGreaterThan(0);
  expect((await tableRows(stack, PREFIX, 'watermarks')).map((r) => r.rowKey).sort()).toEqual([...directory].sort());

  deadLetters.down = false;
  const outcome = await incrementalSync(connector).run({ trigger: 'cli' });
  expect(outcome.skipped).toBe(false);
  // One watermark per carried type (SYNC_RESOURCE_TYPES).
  expect((await tableRows(stack, PREFIX, 'watermarks')).map((r) => r.rowKey).sort()).toEqual(
    [...connector.config.sync.resourceTypes].sort(),
  );
  expect((await deadLetters.list()).map((d) => `${d.resourceType}/${d.id}`)).toContain(`Patient/${plantedId}`);
});

test('dead letters lost by another operation in the same process do not hold a run', async () => {
  const guard = new GuardedDeadLetterStore(new FlakyDeadLetterStore(), () => undefined);
  const letter = (runId: string): DeadLetter => ({
    resourceType: 'Patient',
    id: 'p1',
    stage: 'write',
    reason: 'r',
    attempts: 1,
    at: new Date(0).toISOString(),
    runId,
    operation: 'syncPatient',
  });
  await guard.record([letter('http-call'), letter('http-call')]);
  expect(guard.unpersistedFor('http-call')).toBe(2);
  expect(guard.unpersistedFor('incremental-run')).toBe(0);
});

test('a Patient written after it failed loses its dead letter and no longer holds back its Observations', async () => {
  expect(await deadLetters.get('Patient', plantedId)).toBeDefined();
  const store = stack.openemr.store;
  // Fixed at the source, and a new Observation of it arrives.
  store.put({ ...(store.get('Patient', plantedId) as object), gender: 'female' } as never);
  const observationId = randomUUID();
  store.put({
    ...(store.get('Observation', store.ids('Observation')[0]!) as object),
    id: observationId,
    subject: { reference: `Patient/${plantedId}` },
  } as never);
  store.advanceClock(10);

  const outcome = await incrementalSync(await connectorWith(deadLetters)).run({ trigger: 'cli' });
  expect(outcome.skipped).toBe(false);
  expect(await deadLetters.get('Patient', plantedId)).toBeUndefined();
  expect(await stack.ahds.read('Patient', plantedId)).toBeDefined();
  expect(await stack.ahds.read('Observation', observationId)).toBeDefined();
  expect(await deadLetters.list()).toEqual([]);
});

test('a flood of Observation letters does not hide the Patient letters a run must clear', async () => {
  const letters = new FlakyDeadLetterStore();
  letters.down = false;
  const letter = (resourceType: string, id: string): DeadLetter => ({
    resourceType,
    id,
    stage: 'write',
    status: 422,
    reason: 'r',
    attempts: 1,
    at: new Date(0).toISOString(),
    runId: 'earlier',
    operation: 'test',
  });
  // More Observation letters than a run loads at once, listed before the Patient letters.
  await letters.record(Array.from({ length: 50_001 }, (_, i) => letter('Observation', `earlier-${i}`)));
  const store = stack.openemr.store;
  const patientIds = store.ids('Patient').slice(2, 9);
  await letters.record(patientIds.map((id) => letter('Patient', id)));
  // Seven Patients touched at the source (more than a run looks up one by one) and written again.
  for (const id of patientIds) store.put({ ...(store.get('Patient', id) as object) } as never);
  store.advanceClock(10);

  const outcome = await incrementalSync(await connectorWith(letters)).run({ trigger: 'cli' });
  expect(outcome.skipped).toBe(false);
  expect(await letters.list({ resourceType: 'Patient' })).toEqual([]);
  expect(await letters.list({ resourceType: 'Observation', limit: 60_000 })).toHaveLength(50_001);
});

test('with the dead-letter table unreachable, syncs still write and answer, and a later failure is still reported', async () => {
  // Every call fails, as with Storage down: the lookups that would clear an old dead letter included.
  const down = new FlakyDeadLetterStore();
  const fail = async (): Promise<never> => {
    throw Object.assign(new Error('The table service is unavailable.'), { name: 'RestError', statusCode: 503 });
  };
  Object.assign(down, { get: fail, ids: fail, list: fail, remove: fail });
  const connector = await connectorWith(down);
  const patientId = stack.openemr.store.ids('Patient')[1]!;
  const summary = await connector.sync.syncPatientWithObservations(patientId, 'http');
  expect(summary.status).toBe('ok');
  expect(await stack.ahds.read('Patient', patientId)).toBeDefined();

  // A whole run with a failure after many writes: the failure is still reported, not thrown.
  const store = stack.openemr.store;
  const badId = randomUUID();
  store.put({ ...(store.get('Observation', store.ids('Observation')[4]!) as object), id: badId, status: 'bogus' } as never);
  const full = await connector.sync.fullSync({ trigger: 'cli' });
  expect(full.status).toBe('partial');
  expect(full.failures.map((f) => f.id)).toContain(badId);
  store.delete('Observation', badId);
});

test('replaying a Patient writes its held-back Observations, and their letters are not replayed a second time', async () => {
  const store = stack.openemr.store;
  const patientId = randomUUID();
  const observationIds = [randomUUID(), randomUUID()];
  store.put({ ...(store.get('Patient', store.ids('Patient')[2]!) as object), id: patientId, gender: 'robot' } as never);
  for (const id of observationIds)
    store.put({
      ...(store.get('Observation', store.ids('Observation')[3]!) as object),
      id,
      subject: { reference: `Patient/${patientId}` },
    } as never);
  const letters = new FlakyDeadLetterStore();
  letters.down = false;
  const connector = await connectorWith(letters);
  await connector.sync.syncPatientWithObservations(patientId, 'http');
  expect((await letters.list()).map((d) => d.id).sort()).toEqual([patientId, ...observationIds].sort());

  store.put({ ...(store.get('Patient', patientId) as object), gender: 'male' } as never);
  await stack.openemr.resetStats();
  const summary = await replayDeadLetters(workDepsOf(connector));
  expect(summary).toMatchObject({ attempted: 3, replayed: 3, stillFailing: 0 });
  expect(await letters.list()).toEqual([]);
  // The Observations came with their Patient's replay (one search), never read again one by one.
  expect((await stack.openemr.stats()).byRoute['GET /fhir/Observation/{id}']).toBeUndefined();
  for (const id of observationIds) expect(await stack.ahds.read('Observation', id)).toBeDefined();
});
