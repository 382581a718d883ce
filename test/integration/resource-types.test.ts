/**
 * Encounter and Condition carried end to end beside Patient and Observation (SYNC_RESOURCE_TYPES),
 * against the OpenEMR stand-in (serving them as FhirEncounterService.php / FhirConditionService.php
 * do, see openemr-standin-clinical.test.ts) and the AHDS stand-in: target = source for every type,
 * every reference resolving, no new versions on a re-sync, the write order (nothing sent before what
 * it points at is held), edits, deletes, a reference OpenEMR cannot resolve held back and replayed.
 */
import { randomUUID } from 'node:crypto';
import { reconcileHttpHandler } from '../../functions/reconcile';
import { getConnector } from '../../functions/shared/runtime';
import type { Stack } from '../../stack';
import type { SupportedType } from '../../stack/openemr';
import { replayDeadLetters } from '../../src/sync/replay';
import { processWorkItem, workDepsOf } from '../../src/sync/work-queue';
import { syncPatientEverythingHandler } from '../../functions/sync-patient-everything';
import { startCarryingStack, type CarryingStack } from '../helpers/carried-types';
import { completeRun, invoke, runSummaryOf } from '../helpers/functions';
import { syncObservationHandler } from '../../functions/sync-observation';
import type { WriteWatch } from '../helpers/reference-watch';

const TYPES: SupportedType[] = ['Patient', 'Encounter', 'Condition', 'Observation'];
type Json = Record<string, any>;

let stack: Stack;
let run: CarryingStack['run'];
let diff: CarryingStack['diff'];
let unresolved: CarryingStack['unresolved'];
/** Every write sent that pointed at something the target did not hold then, and the types' first-write order. */
let watch: WriteWatch;

beforeAll(async () => {
  ({ stack, watch, run, diff, unresolved } = await startCarryingStack(TYPES, { prefix: 'rtypes' }));
}, 120_000);
afterAll(() => stack?.close());

test('a full sync carries every type: target = source, every reference resolves, and writes went out in reference order', async () => {
  const answer = await run();
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({ status: 'ok', failed: 0, deadLettered: 0 });
  expect(Object.keys(answer.json.windows)).toEqual(TYPES);
  // Patient, Encounter, Condition and Observation all come from the one export (read.connectorExports).
  for (const type of TYPES) expect([type, answer.json.windows[type]]).toMatchObject([type, { via: 'export', closed: true }]);
  expect(answer.json.byType.Encounter.created).toBe(stack.openemr.store.count('Encounter'));
  expect(answer.json.byType.Condition.created).toBe(stack.openemr.store.count('Condition'));
  expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });
  expect(await unresolved()).toEqual([]);
  // Observations point at Encounters now held by the target.
  const observation = (await stack.ahds.snapshot('Observation'))[0] as Json;
  expect(observation.encounter.reference).toMatch(/^Encounter\//);
  expect(watch.dangling).toEqual([]);
  expect(watch.firstSent).toEqual(TYPES);
}, 300_000);

test('a re-sync of everything creates no new versions', async () => {
  const before = stack.ahds.stats().versionsCreated;
  const answer = await run({ since: '1970-01-01T00:00:00Z' });
  expect(answer.status).toBe(202);
  const done = await completeRun(stack, answer);
  expect(done.state).toBe('succeeded');
  expect(done.result).toMatchObject({ created: 0, updated: 0, failed: 0 });
  expect(stack.ahds.stats().versionsCreated).toBe(before);
  expect(watch.dangling).toEqual([]);
}, 300_000);

test('an edit of each type arrives in the next incremental run; a new Encounter is written before the Condition that points at it', async () => {
  const store = stack.openemr.store;
  const encounterId = store.ids('Encounter')[0]!;
  const encounter = store.get('Encounter', encounterId) as Json;
  store.put({ ...encounter, status: 'cancelled' } as never);
  const condition = store.get('Condition', store.ids('Condition')[0]!) as Json;
  store.put({
    ...condition,
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'resolved' }] },
  } as never);
  const newEncounterId = randomUUID();
  store.put({ ...encounter, id: newEncounterId } as never);
  const newConditionId = randomUUID();
  store.put({ ...condition, id: newConditionId, encounter: { reference: `Encounter/${newEncounterId}` } } as never);
  const patient = store.get('Patient', store.ids('Patient')[0]!) as Json;
  store.put({ ...patient, gender: 'other' } as never);
  const observation = store.get('Observation', store.ids('Observation')[0]!) as Json;
  store.put({ ...observation, status: 'amended' } as never);
  store.advanceClock(30);

  const answer = await run();
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({ status: 'ok', failed: 0 });
  expect(answer.json.byType).toMatchObject({
    Encounter: { created: 1, updated: 1 },
    Condition: { created: 1, updated: 1 },
    Patient: { updated: 1 },
    Observation: { updated: 1 },
  });
  expect(((await stack.ahds.read('Encounter', encounterId)) as Json | undefined)?.status).toBe('cancelled');
  expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });
  expect(await unresolved()).toEqual([]);
  expect(watch.dangling).toEqual([]);
}, 300_000);

test('a Condition whose Encounter OpenEMR does not have is held back and dead-lettered, then replayed once the Encounter arrives', async () => {
  const store = stack.openemr.store;
  const missingEncounter = randomUUID();
  const heldId = randomUUID();
  const template = store.get('Condition', store.ids('Condition')[0]!) as Json;
  store.put({ ...template, id: heldId, encounter: { reference: `Encounter/${missingEncounter}` } } as never);
  store.advanceClock(30);

  const answer = await run();
  expect(answer.json).toMatchObject({ status: 'partial', failed: 1, deadLettered: 1 });
  expect(answer.json.failures).toEqual([
    {
      resourceType: 'Condition',
      id: heldId,
      stage: 'read',
      reason: `Not written because OpenEMR has no Encounter/${missingEncounter} (the Condition's encounter).`,
    },
  ]);
  expect(await stack.ahds.read('Condition', heldId)).toBeUndefined();

  // The Encounter arrives at the source; the replay writes it first, then the Condition.
  const encounter = store.get('Encounter', store.ids('Encounter')[1]!) as Json;
  store.put({ ...encounter, id: missingEncounter } as never);
  const connector = await getConnector();
  const replay = await replayDeadLetters({ sync: connector.sync, reader: connector.reader, deadLetters: connector.deadLetters } as never, {
    resourceType: 'Condition',
  });
  expect(replay).toMatchObject({ attempted: 1, replayed: 1, stillFailing: 0 });
  expect(((await stack.ahds.read('Condition', heldId)) as Json | undefined)?.encounter).toEqual({
    reference: `Encounter/${missingEncounter}`,
  });
  expect(await unresolved()).toEqual([]);
  expect(watch.dangling).toEqual([]);
}, 300_000);

test('a Patient synced with everything brings its Encounters and Conditions before its Observations', async () => {
  const store = stack.openemr.store;
  const patientId = randomUUID();
  const encounterId = randomUUID();
  store.put({ ...(store.get('Patient', store.ids('Patient')[3]!) as Json), id: patientId } as never);
  store.put({
    ...(store.get('Encounter', store.ids('Encounter')[3]!) as Json),
    id: encounterId,
    subject: { reference: `Patient/${patientId}` },
  } as never);
  store.put({
    ...(store.get('Condition', store.ids('Condition')[3]!) as Json),
    id: randomUUID(),
    subject: { reference: `Patient/${patientId}` },
    encounter: { reference: `Encounter/${encounterId}` },
  } as never);
  store.put({
    ...(store.get('Observation', store.ids('Observation')[3]!) as Json),
    id: randomUUID(),
    subject: { reference: `Patient/${patientId}` },
    encounter: { reference: `Encounter/${encounterId}` },
  } as never);
  const answer = await invoke(syncPatientEverythingHandler, {
    method: 'POST',
    url: `sync/patients/${patientId}/everything`,
    params: { id: patientId },
  });
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({
    status: 'ok',
    failed: 0,
    byType: { Patient: { created: 1 }, Encounter: { created: 1 }, Condition: { created: 1 }, Observation: { created: 1 } },
  });
  expect(watch.dangling).toEqual([]);
}, 300_000);

test('a backfill work item (Patient window) writes every carried type in reference order and changes nothing already current', async () => {
  const connector = await getConnector();
  const summary = await processWorkItem(workDepsOf(connector), {
    kind: 'patients',
    since: '1970-01-01T00:00:00.000Z',
    until: new Date(Date.now() + 3600_000).toISOString(),
  });
  expect(summary).toMatchObject({ status: 'ok', failed: 0, created: 0, updated: 0 });
  expect(summary.byType.Encounter!.unchanged).toBe(stack.openemr.store.count('Encounter'));
  expect(summary.byType.Condition!.unchanged).toBe(stack.openemr.store.count('Condition'));
  expect(watch.dangling).toEqual([]);
}, 300_000);

test('reconcile finds a Condition deleted at the source and counts every carried type', async () => {
  const store = stack.openemr.store;
  const goneId = store.ids('Condition')[2]!;
  store.delete('Condition', goneId);
  const answer = await invoke(reconcileHttpHandler, { method: 'POST', url: 'reconcile' });
  const done = await completeRun(stack, answer);
  expect(done.state).toBe('succeeded');
  expect(done.result.byType.Condition).toMatchObject({ deletedAtSource: 1, missing: 0, stale: 0 });
  expect(done.result.byType.Encounter).toMatchObject({ missing: 0, stale: 0, deletedAtSource: 0 });
}, 300_000);

// Last: the Observation and Encounter it holds back stay dead-lettered.
test('a single Observation sync writes its Patient and its Encounter first; when the Encounter fails, it holds the Observation back saying why', async () => {
  const store = stack.openemr.store;
  const patientId = randomUUID();
  const encounterId = randomUUID();
  const observationId = randomUUID();
  store.put({ ...(store.get('Patient', store.ids('Patient')[4]!) as Json), id: patientId } as never);
  const encounter = {
    ...(store.get('Encounter', store.ids('Encounter')[4]!) as Json),
    id: encounterId,
    subject: { reference: `Patient/${patientId}` },
  };
  store.put(encounter as never);
  store.put({
    ...(store.get('Observation', store.ids('Observation')[4]!) as Json),
    id: observationId,
    subject: { reference: `Patient/${patientId}` },
    encounter: { reference: `Encounter/${encounterId}` },
  } as never);
  const sync = () => invoke(syncObservationHandler, { url: `sync/observations/${observationId}`, params: { id: observationId } });

  const answer = await sync();
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({
    operation: 'syncObservation',
    status: 'ok',
    byType: { Patient: { created: 1 }, Encounter: { created: 1 }, Observation: { created: 1 } },
  });
  expect(watch.dangling).toEqual([]);

  // An Encounter that cannot be written (it points at a Patient OpenEMR does not have): its Observation waits.
  const lonelyEncounterId = randomUUID();
  const absentPatientId = randomUUID();
  const heldId = randomUUID();
  store.put({ ...encounter, id: lonelyEncounterId, subject: { reference: `Patient/${absentPatientId}` } } as never);
  store.put({
    ...(store.get('Observation', store.ids('Observation')[4]!) as Json),
    id: heldId,
    subject: { reference: `Patient/${patientId}` },
    encounter: { reference: `Encounter/${lonelyEncounterId}` },
  } as never);
  const refused = runSummaryOf((await invoke(syncObservationHandler, { url: `sync/observations/${heldId}`, params: { id: heldId } })).json);
  expect(refused.message).toBe(`Encounter/${lonelyEncounterId} could not be written, so its Observation was not.`);
  expect(refused.failures).toEqual([
    {
      resourceType: 'Encounter',
      id: lonelyEncounterId,
      stage: 'read',
      reason: `Not written because OpenEMR has no Patient/${absentPatientId} (the Encounter's subject).`,
    },
    {
      resourceType: 'Observation',
      id: heldId,
      stage: 'write',
      reason: `Not written because its Encounter/${lonelyEncounterId} could not be written.`,
    },
  ]);
  expect(await stack.ahds.read('Observation', heldId)).toBeUndefined();
  expect(watch.dangling).toEqual([]);
}, 300_000);
