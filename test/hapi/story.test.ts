import { randomUUID } from 'node:crypto';
import { reconcileHttpHandler } from '../../functions/reconcile';
import { syncRunHandler } from '../../functions/sync-run';
import { startStack, type Stack } from '../../stack';
import { completeRun, invoke, useStack } from '../helpers/functions';
import { mapperFor } from '../helpers/incremental-stack';
import { hapiAll, hapiDiff } from './hapi-target';

/**
 * The connector's whole story against a real HAPI FHIR JPA server (stack/hapi) whose request
 * validator (HL7's) judges every write: full sync of the sample data, a re-sync that makes no new
 * version, edits, deletes and reconcile, with target = source at the end. Driven through the
 * public entry points (the sync/run and reconcile functions), as the AHDS incremental test does.
 */
const PREFIX = 'hapistory';
const EXPORT_SCOPES = 'system/Patient.read system/Observation.read system/*.$export system/*.$bulkdata-status system/Binary.read';
let stack: Stack;
let settings: Record<string, string>;

const run = (query: Record<string, string> = {}) => invoke(syncRunHandler, { url: 'sync/run', query });
/** A full sync or a reconcile is a long run: 202, then the queue worker runs it; its summary is the run's result. */
const longRun = async (accepted: Promise<Awaited<ReturnType<typeof invoke>>>) => {
  const status = await completeRun(stack, await accepted);
  expect(status).toMatchObject({ state: 'succeeded', done: true });
  return { status: 200, json: status.result };
};
const diff = async () => hapiDiff(stack, mapperFor({ ...stack.env, ...settings }));

beforeAll(async () => {
  stack = await startStack({ azurite: true, target: 'hapi', hapi: { log: (l) => console.log(l) } });
  // Four bundles of 100 at a time: HAPI validates each entry with HL7's validator on two shared cores.
  settings = {
    SYNC_TABLE_PREFIX: PREFIX,
    // The story is Patient and Observation against HAPI's validator (the export path and its scopes).
    SYNC_RESOURCE_TYPES: 'Patient,Observation',
    OPENEMR_SCOPES: EXPORT_SCOPES,
    SYNC_LAG_SECONDS: '5',
    AHDS_BATCH_SIZE: '100',
    AHDS_MAX_CONCURRENCY: '4',
  };
  useStack(stack, settings);
}, 900_000);
afterAll(() => stack?.close());

test('a full sync writes every Patient and Observation of the sample data, each judged valid by HAPI (0 errors)', async () => {
  await stack.hapi!.resetValidationReport();
  const answer = await longRun(run({ full: 'true' }));
  const patients = stack.openemr.store.ids('Patient').length;
  const observations = stack.openemr.store.ids('Observation').length;
  expect(answer.json).toMatchObject({ status: 'ok', failed: 0, deadLettered: 0, updated: 0 });
  expect(answer.json.byType.Patient.created).toBe(patients);
  const d = await diff();
  expect(d).toEqual({ missing: [], stale: [], extra: [], unmappable: d.unmappable });
  expect(answer.json.byType.Observation.created).toBe(observations - d.unmappable);
  const report = await stack.hapi!.validationReport();
  console.log(
    `HAPI validator on the full sync: ${report.requests} requests judged\n${report.issues.map((i) => `${i.severity}\t${i.count}\t${i.messageId}\t${i.path}\t${i.example}`).join('\n')}`,
  );
  expect(report.requests).toBeGreaterThan(0);
  expect(report.issues.filter((i) => i.severity === 'error' || i.severity === 'fatal')).toEqual([]);
});

test('a full re-sync of unchanged data makes no new version in HAPI', async () => {
  const answer = await longRun(run({ full: 'true' }));
  expect(answer.json).toMatchObject({ status: 'ok', created: 0, updated: 0, failed: 0 });
  expect(answer.json.unchanged).toBe(answer.json.read - (answer.json.skipped ?? 0) - (await diff()).unmappable);
  for (const type of ['Patient', 'Observation']) {
    const versions = new Set((await hapiAll(stack.hapi!.fhirUrl, type)).map((r) => r.meta.versionId));
    expect([type, [...versions]]).toEqual([type, ['1']]);
  }
});

test('edits at the source arrive by the incremental run: a changed Patient is version 2, a new Observation version 1', async () => {
  const store = stack.openemr.store;
  const [first, second] = store.ids('Patient');
  const patient = store.get('Patient', first!) as Record<string, any>;
  store.put({ ...patient, name: [{ use: 'official', family: 'Changedname', given: ['Ann'] }] } as never);
  const template = store.get('Observation', store.ids('Observation')[0]!) as Record<string, any>;
  const newId = randomUUID();
  store.put({
    ...template,
    id: newId,
    subject: { reference: `Patient/${second}` },
    valueQuantity: { value: 42, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
  } as never);
  store.advanceClock(10);
  const answer = await run();
  expect(answer.json).toMatchObject({ status: 'ok', failed: 0 });
  expect(answer.json.byType.Patient.updated).toBe(1);
  expect(answer.json.byType.Observation.created).toBe(1);
  const stored = (await (await fetch(`${stack.hapi!.fhirUrl}/Patient/${first}`)).json()) as Record<string, any>;
  expect(stored.meta.versionId).toBe('2');
  expect(stored.name[0].family).toBe('Changedname');
  expect(await diff()).toMatchObject({ missing: [], stale: [], extra: [] });
});

test('reconcile deletes in HAPI what OpenEMR deleted (RECONCILE_DELETE_MODE=delete): HAPI then answers 410, and target = source', async () => {
  const store = stack.openemr.store;
  const gone = store.ids('Observation').slice(0, 3);
  for (const id of gone) store.delete('Observation', id);
  useStack(stack, { ...settings, RECONCILE_DELETE_MODE: 'delete' });
  try {
    const answer = await longRun(invoke(reconcileHttpHandler, { url: 'reconcile' }));
    expect(answer.json.byType.Observation).toMatchObject({ deletedAtSource: 3, deleted: 3, stale: 0, missing: 0 });
    expect(answer.json.byType.Patient).toMatchObject({ deletedAtSource: 0, stale: 0, missing: 0 });
  } finally {
    useStack(stack, settings);
  }
  for (const id of gone) expect((await fetch(`${stack.hapi!.fhirUrl}/Observation/${id}`)).status).toBe(410);
  expect(await diff()).toMatchObject({ missing: [], stale: [], extra: [] });
  // A second reconcile finds nothing to do.
  const again = await longRun(invoke(reconcileHttpHandler, { url: 'reconcile' }));
  expect(again.json.byType.Observation).toMatchObject({ deletedAtSource: 0, stale: 0, missing: 0 });
});
