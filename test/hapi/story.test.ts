import { randomUUID } from 'node:crypto';
import { reconcileHttpHandler } from '../../functions/reconcile';
import { syncRunHandler } from '../../functions/sync-run';
import { startStack, type Stack } from '../../stack';
import { defaultDirectoryDir, type SupportedType } from '../../stack/openemr';
import { specOf } from '../../src/sync/resource-types';
import { completeRun, invoke, useStack } from '../helpers/functions';
import { mapperFor } from '../helpers/incremental-stack';
import { hapiAll, hapiDiff } from './hapi-target';

/**
 * The connector's whole story against a real HAPI FHIR JPA server (stack/hapi) whose request
 * validator (HL7's) judges every write: full sync of the sample data, a re-sync that makes no new
 * version, edits, deletes and reconcile, with target = source at the end. Driven through the
 * public entry points (the sync/run and reconcile functions), as the AHDS incremental test does.
 * Then the directory (Practitioner, Organization, Location) beside Patients and Encounters, on the
 * same server: the OpenEMR stand-in serves data/openemr-directory, which the Patients and
 * Observations of the story do not point at (only Encounters, DiagnosticReports, DocumentReferences,
 * Immunizations, MedicationRequests and Procedures of the sample name a provider).
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
  stack = await startStack({
    azurite: true,
    target: 'hapi',
    hapi: { log: (l) => console.log(l) },
    openemr: { directoryDir: defaultDirectoryDir() },
  });
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

/** Every `reference` in a resource, with the path of the element holding it. */
function referencesIn(node: unknown, path = ''): Array<{ path: string; reference: string }> {
  if (Array.isArray(node)) return node.flatMap((n) => referencesIn(n, path));
  if (!node || typeof node !== 'object') return [];
  const o = node as Record<string, unknown>;
  const own = typeof o.reference === 'string' ? [{ path, reference: o.reference }] : [];
  return [...own, ...Object.entries(o).flatMap(([k, v]) => (k === 'reference' ? [] : referencesIn(v, path ? `${path}.${k}` : k)))];
}

// Set explicitly: whether the directory types are carried by default or not, this stage carries them.
const DIRECTORY_STAGE: SupportedType[] = ['Organization', 'Practitioner', 'Location', 'Patient', 'Encounter'];

test('Practitioner, Organization and Location carried beside Patients and Encounters into HAPI: 0 validator errors, target = source, every Encounter participant, serviceProvider and location answered by HAPI', async () => {
  const store = stack.openemr.store;
  const directory = {
    ...settings,
    SYNC_TABLE_PREFIX: 'hapidir',
    SYNC_RESOURCE_TYPES: DIRECTORY_STAGE.join(','),
    OPENEMR_SCOPES: [...new Set([...DIRECTORY_STAGE.map((t) => specOf(t).read.scope), ...EXPORT_SCOPES.split(' ')])].join(' '),
  };
  useStack(stack, directory);
  await stack.hapi!.resetValidationReport();
  try {
    const answer = await longRun(run({ full: 'true' }));
    expect(answer.json).toMatchObject({ status: 'ok', failed: 0, deadLettered: 0 });
    // The Patients are those the story wrote (unchanged); the rest is new to HAPI.
    expect(answer.json.byType.Patient).toMatchObject({ created: 0, updated: 0 });
    for (const type of ['Organization', 'Practitioner', 'Location', 'Encounter'] as const)
      expect([type, answer.json.byType[type].created]).toEqual([type, store.count(type)]);
    expect(await hapiDiff(stack, mapperFor({ ...stack.env, ...directory }), DIRECTORY_STAGE)).toEqual({
      missing: [],
      stale: [],
      extra: [],
      unmappable: 0,
    });
  } finally {
    useStack(stack, settings);
  }
  const report = await stack.hapi!.validationReport();
  console.log(
    `HAPI validator on the directory sync: ${report.requests} requests judged\n${report.issues.map((i) => `${i.severity}\t${i.count}\t${i.messageId}\t${i.path}\t${i.example}`).join('\n')}`,
  );
  expect(report.requests).toBeGreaterThan(0);
  expect(report.issues.filter((i) => i.severity === 'error' || i.severity === 'fatal')).toEqual([]);

  // Every Encounter names its practitioner, facility and place (as OpenEMR's FhirEncounterService.php
  // does once the sample's providers are in the directory), and HAPI answers each of them.
  const encounters = await hapiAll(stack.hapi!.fhirUrl, 'Encounter');
  expect(encounters).toHaveLength(store.count('Encounter'));
  const named = { 'participant.individual': 'Practitioner', serviceProvider: 'Organization', 'location.location': 'Location' } as const;
  const asked = new Set<string>();
  for (const [path, type] of Object.entries(named)) {
    const refs = encounters.map((e) => referencesIn(e).filter((r) => r.path === path));
    expect([path, refs.filter((r) => r.length === 0).length]).toEqual([path, 0]);
    for (const r of refs.flat()) {
      expect(r.reference.startsWith(`${type}/`)).toBe(true);
      asked.add(r.reference);
    }
  }
  // And every other reference the directory and the Encounters hold (Location.managingOrganization, subject).
  for (const type of ['Organization', 'Practitioner', 'Location'])
    for (const r of await hapiAll(stack.hapi!.fhirUrl, type)) for (const ref of referencesIn(r)) asked.add(ref.reference);
  for (const e of encounters) for (const ref of referencesIn(e)) asked.add(ref.reference);
  const unanswered: string[] = [];
  for (const ref of asked) {
    const res = await fetch(`${stack.hapi!.fhirUrl}/${ref}`, { headers: { accept: 'application/fhir+json', 'cache-control': 'no-cache' } });
    await res.arrayBuffer();
    if (res.status !== 200) unanswered.push(`${ref}: ${res.status}`);
  }
  console.log(
    `Directory on HAPI: ${encounters.length} Encounters, ${DIRECTORY_STAGE.slice(0, 3)
      .map((t) => `${store.count(t)} ${t}s`)
      .join(', ')}; ${asked.size} distinct references asked of HAPI`,
  );
  expect(unanswered).toEqual([]);
});
