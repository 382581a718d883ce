import { randomUUID } from 'node:crypto';
import { loadConfig } from '../../src/config/load';
import { createConnector, type Connector } from '../../src/connector';
import { MemoryDeadLetterStore } from '../../src/sync/dead-letters';
import { incrementalSync } from '../../src/sync/incremental';
import { carriedReferences } from '../../src/sync/resource-types';
import { startStack, type Stack } from '../../stack';
import { incrementalSettings, trimSource } from '../helpers/incremental-stack';

/**
 * Reading OpenEMR the way its PHP code answers, counted at the stand-in: crowded seconds (the 7.0.3
 * upgrade stamps every legacy patient_data row with one last_updated second, and `_sort` has no
 * tie-break: PatientService.php, SearchConfigClauseBuilder.php), request bounds per run, and
 * Observations whose Patient is missing at the source or dead-lettered held back, never written.
 */

jest.setTimeout(240_000);

let stack: Stack;
let connector: Connector;
let deadLetters: MemoryDeadLetterStore;

beforeAll(async () => {
  // unstableTies: ties of a sorted, limited Patient search come in another order per LIMIT window,
  // as MySQL's filesort may (no tie-break: PatientService.php, SearchConfigClauseBuilder.php).
  stack = await startStack({ azurite: true, openemr: { unstableTies: true } });
  trimSource(stack, 400);
  deadLetters = new MemoryDeadLetterStore();
  connector = await createConnector(
    loadConfig(incrementalSettings(stack, { SYNC_TABLE_PREFIX: 'reads', SYNC_LAG_SECONDS: '0', SYNC_OVERLAP_SECONDS: '60' })),
    { deadLetters },
  );
  const first = await incrementalSync(connector).run({ trigger: 'cli' });
  if (first.skipped || first.value.status !== 'ok') throw new Error('first run failed');
});
afterAll(() => stack?.close());

async function runOnce() {
  const outcome = await incrementalSync(connector).run({ trigger: 'cli' });
  if (outcome.skipped) throw new Error('skipped');
  return outcome.value;
}

test('450 Patients in one second plus 400 changed Observations: each arrives once, in about k/200 requests plus a few', async () => {
  const store = stack.openemr.store;
  store.advanceClock(30);
  const template = store.get('Patient', store.ids('Patient')[0]!)! as Record<string, unknown>;
  const second = new Date(store.now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const crowd = Array.from({ length: 450 }, () => ({ ...template, id: randomUUID(), identifier: [], meta: { lastUpdated: second } }));
  store.importResources(crowd as never);
  const observationIds = store.ids('Observation').slice(0, 400);
  for (const id of observationIds) store.put({ ...store.get('Observation', id)!, status: 'amended' } as never);
  store.advanceClock(5);

  stack.openemr.resetStats();
  const summary = await runOnce();
  expect(summary.status).toBe('ok');
  expect(summary.byType.Patient!.created).toBe(450);
  expect(summary.byType.Observation!.updated).toBe(400);
  const routes = stack.openemr.stats().byRoute;
  // Patient: pages of 200 and one whole-second read for the crowded second.
  expect(routes['GET /fhir/Patient']).toBeLessThanOrEqual(Math.ceil(450 / 200) + 2);
  // Observation: one `_lastUpdated=ge` read (no _count); their Patients were not read this run: one `_id` lookup.
  expect(routes['GET /fhir/Observation']).toBe(1);
  // The other carried types (Encounter, Condition, …): one `_lastUpdated=ge` read each, nothing
  // changed; those the changed Observations point at (their Encounters) one `_id` lookup more.
  const types = connector.config.sync.resourceTypes;
  const others = types.filter((t) => t !== 'Patient' && t !== 'Observation');
  const pointedAt = carriedReferences('Observation', types).map((r) => r.type);
  expect(Object.fromEntries(others.map((t) => [t, routes[`GET /fhir/${t}`]]))).toEqual(
    Object.fromEntries(others.map((t) => [t, pointedAt.includes(t) ? 2 : 1])),
  );
  expect(stack.openemr.stats().requests).toBeLessThanOrEqual(Math.ceil(850 / 200) + 6 + others.length + pointedAt.length);
});

test('an Observation whose Patient is not in OpenEMR is held back and dead-lettered with its reason, never written with a dangling subject', async () => {
  const store = stack.openemr.store;
  const orphan = randomUUID();
  const missingPatient = randomUUID();
  store.put({
    ...store.get('Observation', store.ids('Observation')[0]!)!,
    id: orphan,
    subject: { reference: `Patient/${missingPatient}` },
  } as never);
  store.advanceClock(5);
  const summary = await runOnce();
  expect(await stack.ahds.read('Observation', orphan)).toBeUndefined();
  expect(summary.failures).toContainEqual(
    expect.objectContaining({
      resourceType: 'Observation',
      id: orphan,
      reason: `Not written because OpenEMR has no Patient/${missingPatient} (the Observation's subject).`,
    }),
  );
  expect(await deadLetters.get('Observation', orphan)).toBeDefined();
});

test('an Observation whose Patient is dead-lettered for a 70-character id is held back with it', async () => {
  const store = stack.openemr.store;
  const longId = `p${'x'.repeat(69)}`;
  const child = randomUUID();
  store.put({ ...store.get('Patient', store.ids('Patient')[0]!)!, id: longId } as never);
  store.put({
    ...store.get('Observation', store.ids('Observation')[0]!)!,
    id: child,
    subject: { reference: `Patient/${longId}` },
  } as never);
  store.advanceClock(5);
  const summary = await runOnce();
  expect(await deadLetters.get('Patient', longId)).toBeDefined();
  expect(await stack.ahds.read('Observation', child)).toBeUndefined();
  expect(summary.failures).toContainEqual(
    expect.objectContaining({
      resourceType: 'Observation',
      id: child,
      reason: `Not written because its Patient/${longId} could not be written.`,
    }),
  );
  expect(await deadLetters.get('Observation', child)).toBeDefined();
});

test('after the 7.0.3 upgrade stamps every legacy row with one second (7_0_2-to-7_0_3_upgrade.sql), a search-only run reads each Patient once', async () => {
  const store = stack.openemr.store;
  store.upgradeArtefact();
  store.advanceClock(5);
  stack.openemr.resetStats();
  const searchOnly = await createConnector(
    loadConfig(
      incrementalSettings(stack, { SYNC_TABLE_PREFIX: 'readsup', SYNC_LAG_SECONDS: '0', OPENEMR_EXPORT: 'false', OPENEMR_PAGE_SIZE: '50' }),
    ),
    { deadLetters: new MemoryDeadLetterStore() },
  );
  const outcome = await incrementalSync(searchOnly).run({ trigger: 'cli', since: '1970-01-01T00:00:00Z' });
  if (outcome.skipped) throw new Error('skipped');
  const patients = store.count('Patient');
  expect(
    outcome.value.byType.Patient!.created +
      outcome.value.byType.Patient!.updated +
      outcome.value.byType.Patient!.unchanged +
      (outcome.value.byType.Patient!.failed ?? 0),
  ).toBe(patients);
  // The crowded second is one whole-second read; the pages around it about patients / 50.
  expect(stack.openemr.stats().byRoute['GET /fhir/Patient']).toBeLessThanOrEqual(Math.ceil(patients / 50) + 3);
});
