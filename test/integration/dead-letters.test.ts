import { randomUUID } from 'node:crypto';
import { listDeadLettersHandler, replayDeadLettersHandler, replayOneDeadLetterHandler } from '../../functions/dead-letters';
import { syncRunHandler } from '../../functions/sync-run';
import { startStack, type Stack } from '../../stack';
import { completeRun, invoke, runSummaryOf, useStack } from '../helpers/functions';
import { mapperFor, tableRows, targetDiff, trimSource } from '../helpers/incremental-stack';

const PREFIX = 'dl';
const FAULTS = { rates: { status429: 0.04, status500: 0.02, status503: 0.02, reset: 0.02 }, retryAfterMs: 5 };
let stack: Stack;
let settings: Record<string, string>;

const plantedId = randomUUID();
const plantedObservationId = randomUUID();
const PII = {
  family: 'Quillfeather',
  given: 'Marisol',
  birthDate: '1961-07-04',
  ssn: '987-65-4321',
  line: '4321 Secretive Lane',
  city: 'Hiddenvale',
};

beforeAll(async () => {
  stack = await startStack({ azurite: true });
  trimSource(stack, 1000);
  // No $export scopes: every window is read with searches, so OpenEMR sees plenty of faulted requests.
  settings = { SYNC_TABLE_PREFIX: PREFIX, SYNC_LAG_SECONDS: '5', RETRY_MAX_ATTEMPTS: '8', AHDS_BATCH_SIZE: '50', OPENEMR_PAGE_SIZE: '4' };
  useStack(stack, settings);
  const store = stack.openemr.store;
  const template = store.get('Patient', store.ids('Patient')[0]!) as Record<string, unknown>;
  // A Patient the mapper's validation refuses (gender outside the required value set), full of PII,
  // and an Observation of it that therefore cannot be written either.
  store.put({
    ...template,
    id: plantedId,
    gender: 'robot',
    name: [{ family: PII.family, given: [PII.given] }],
    birthDate: PII.birthDate,
    identifier: [{ system: 'http://hl7.org/fhir/sid/us-ssn', value: PII.ssn }],
    address: [{ line: [PII.line], city: PII.city, state: 'MA', postalCode: '02134' }],
  } as never);
  const observation = store.get('Observation', store.ids('Observation')[0]!) as Record<string, unknown>;
  store.put({ ...observation, id: plantedObservationId, subject: { reference: `Patient/${plantedId}` } } as never);
});
afterAll(() => stack?.close());

/** Runs until a run closes its windows (a request can exhaust its retries under 10% faults). */
async function runToCompletion(): Promise<any> {
  for (let i = 0; i < 4; i++) {
    const answer = await invoke(syncRunHandler, { url: 'sync/run' });
    if (answer.status === 200 || answer.status === 422) return runSummaryOf(answer.json);
    expect(answer.status).toBe(503);
  }
  throw new Error('no run completed');
}

/** Every string a dead-letter row must never hold: the planted PII and every sample Patient's. */
function privateStrings(): string[] {
  const out = new Set<string>(Object.values(PII));
  for (const id of stack.openemr.store.ids('Patient')) {
    const p = stack.openemr.store.get('Patient', id) as any;
    for (const n of p.name ?? []) for (const s of [n.family, ...(n.given ?? [])]) if (s) out.add(s);
    if (p.birthDate) out.add(p.birthDate);
    for (const i of p.identifier ?? []) if (i.value) out.add(i.value);
    for (const a of p.address ?? []) for (const s of [...(a.line ?? []), a.city]) if (s) out.add(s);
    for (const t of p.telecom ?? []) if (t.value) out.add(t.value);
  }
  return [...out].filter((s) => String(s).length >= 5);
}

test('(d) with 10% injected 429/5xx/resets on both sides the target equals the source, and permanent failures are dead letters without patient data', async () => {
  stack.openemr.faults.configure({ ...FAULTS, seed: 99 });
  stack.ahds.faults.configure({ ...FAULTS, seed: 2024 });
  const first = await runToCompletion();
  expect(first.windows.Observation.closed).toBe(true);

  // Changes between runs, still under faults.
  const store = stack.openemr.store;
  const changedId = store.ids('Patient')[3]!;
  store.put({ ...(store.get('Patient', changedId) as object), gender: 'other' } as never);
  store.advanceClock(10);
  const second = await runToCompletion();
  expect(second.byType.Patient.updated).toBe(1);

  const injected = stack.openemr.faults.injected;
  const injectedAhds = stack.ahds.faults.injected;
  // Both sides really were faulted (seeded: the same faults every run).
  expect(Object.values(injected).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  expect(Object.values(injectedAhds).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  stack.openemr.faults.configure({});
  stack.ahds.faults.configure({});

  // Everything arrived but the planted pair: the Patient validation refuses, and its Observation
  // (valid itself) held back because its Patient could not be written. Both are dead letters.
  expect(await targetDiff(stack, mapperFor({ ...stack.env, ...settings }))).toEqual({
    missing: [`Observation/${plantedObservationId}`],
    stale: [],
    extra: [],
  });
  expect(await stack.ahds.read('Patient', plantedId)).toBeUndefined();
  const listed = await invoke(listDeadLettersHandler, { method: 'GET', url: 'deadletters' });
  expect(listed.status).toBe(200);
  expect(listed.json.items.map((d: any) => `${d.resourceType}/${d.id}`).sort()).toEqual(
    [`Observation/${plantedObservationId}`, `Patient/${plantedId}`].sort(),
  );
  const patientLetter = listed.json.items.find((d: any) => d.resourceType === 'Patient');
  expect(patientLetter).toMatchObject({
    stage: 'map',
    attempts: 1,
    reason: expect.stringMatching(/gender/),
    at: expect.any(String),
    runId: expect.any(String),
  });
  const onlyObservations = await invoke(listDeadLettersHandler, {
    method: 'GET',
    url: 'deadletters',
    query: { resourceType: 'Observation', limit: '5' },
  });
  expect(onlyObservations.json.items).toEqual([
    expect.objectContaining({ resourceType: 'Observation', id: plantedObservationId, reason: expect.stringMatching(/its Patient\//) }),
  ]);

  // The rows themselves, as stored: identifiers, stage, status, reason, attempts, time; no PII.
  const rows = await tableRows(stack, PREFIX, 'deadLetters');
  expect(rows).toHaveLength(2);
  const text = JSON.stringify(rows).toLowerCase();
  const leaked = privateStrings().filter((s) => text.includes(String(s).toLowerCase()));
  expect(leaked).toEqual([]);
  expect(text).not.toMatch(/\b\d{3}-\d{2}-\d{4}\b/);
});

test('(e) an identity without the writer role fails the run with one sentence and dead-letters nothing; replay clears the dead letters once the fault is gone; a source delete is reported as "deleted at source"', async () => {
  const store = stack.openemr.store;
  // The fault is fixed in the source.
  store.put({ ...(store.get('Patient', plantedId) as object), gender: 'female' } as never);

  // AHDS refuses every write (403, a reader-only identity) for a while: an outage, not dead letters.
  const changedId = store.ids('Patient')[4]!;
  store.put({ ...(store.get('Patient', changedId) as object), gender: 'unknown' } as never);
  store.advanceClock(10);
  const before = (await invoke(listDeadLettersHandler, { method: 'GET', url: 'deadletters' })).json.count;
  stack.ahds.setWriterRole(stack.entra.clientId, false);
  const refused = await invoke(syncRunHandler, { url: 'sync/run' });
  stack.ahds.setWriterRole(stack.entra.clientId, true);
  expect(refused.status).toBe(502);
  expect(JSON.stringify(refused.json)).toMatch(
    /refused every write of a bundle \(403\): give the connector's identity the FHIR Data Writer role/,
  );
  expect((await invoke(listDeadLettersHandler, { method: 'GET', url: 'deadletters' })).json.count).toBe(before);

  // The planted Observation is deleted at the source before it is replayed.
  store.delete('Observation', plantedObservationId);

  // One by id first...
  const one = await invoke(replayOneDeadLetterHandler, {
    url: `deadletters/replay/Patient/${plantedId}`,
    params: { resourceType: 'Patient', id: plantedId },
  });
  expect(one.status).toBe(200);
  expect(one.json).toMatchObject({ attempted: 1, replayed: 1 });
  const unknown = await invoke(replayOneDeadLetterHandler, {
    url: `deadletters/replay/Patient/${plantedId}`,
    params: { resourceType: 'Patient', id: plantedId },
  });
  expect(unknown.status).toBe(404);

  // ...then all the rest: a long run, answered 202 and followed to its end.
  const accepted = await invoke(replayDeadLettersHandler, { url: 'deadletters/replay' });
  const status = await completeRun(stack, accepted);
  expect(status).toMatchObject({ kind: 'replay', state: 'succeeded', done: true });
  const all = { json: status.result };
  expect(all.json).toMatchObject({ attempted: 1, replayed: 0, deletedAtSource: 1, stillFailing: 0 });
  expect(all.json.items).toContainEqual({
    resourceType: 'Observation',
    id: plantedObservationId,
    outcome: 'deleted-at-source',
    status: 404,
    reason: 'deleted at source',
  });
  expect((await invoke(listDeadLettersHandler, { method: 'GET', url: 'deadletters' })).json.count).toBe(0);
  expect(await tableRows(stack, PREFIX, 'deadLetters')).toEqual([]);
  expect(await stack.ahds.read('Patient', plantedId)).toBeDefined();

  // The refused run closed no window: the next one writes what it could not.
  const next = await invoke(syncRunHandler, { url: 'sync/run' });
  expect(next.status).toBe(200);
  expect(((await stack.ahds.read('Patient', changedId)) as any).gender).toBe('unknown');
  expect(await targetDiff(stack, mapperFor({ ...stack.env, ...settings }))).toEqual({ missing: [], stale: [], extra: [] });
});
