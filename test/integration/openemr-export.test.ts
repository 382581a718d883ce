import { randomUUID } from 'node:crypto';
import { loadConfig } from '../../src/config/load';
import { createConnector, type Connector } from '../../src/connector';
import { MemoryDeadLetterStore } from '../../src/sync/dead-letters';
import { incrementalSync } from '../../src/sync/incremental';
import { reconcile } from '../../src/sync/reconcile';
import { startStack, type Stack } from '../../stack';
import type { SupportedType } from '../../stack/openemr/resource-shape';
import { incrementalSettings, mapperFor, targetDiff, trimSource } from '../helpers/incremental-stack';
import { startForeignHost, startOpenEmrProxy, type OpenEmrProxy } from '../helpers/openemr-proxy';

/**
 * The export client against what real OpenEMR's synchronous $export does on a bad day
 * (FhirOperationExportRestController.php: a 2-minute budget whose unfinished types go to error[],
 * Binary files that expire after an hour and then answer 404 with an empty body, status and Binary
 * URLs built from site_addr_oath). The connector talks to a proxy in front of the stand-in, so the
 * stand-in's absolute URLs carry another origin than the configured base, as behind TLS offload.
 * Each failure must lose nothing (the types it did not finish are read by search) and send no delete.
 */

jest.setTimeout(240_000);

let stack: Stack;
let proxy: OpenEmrProxy;
let foreign: Awaited<ReturnType<typeof startForeignHost>>;
const logs: string[] = [];

beforeAll(async () => {
  stack = await startStack({ azurite: true });
  trimSource(stack, 300);
  proxy = await startOpenEmrProxy(stack.openemr, loadConfig(incrementalSettings(stack)));
  foreign = await startForeignHost();
});
afterAll(async () => {
  await proxy?.close();
  await foreign?.close();
  await stack?.close();
});
beforeEach(async () => {
  proxy.reset();
  foreign.hits.length = 0;
  logs.length = 0;
  await emptyTarget();
});

function settings(extra: Record<string, string> = {}): Record<string, string> {
  return incrementalSettings(stack, {
    OPENEMR_BASE_URL: proxy.url,
    SYNC_TABLE_PREFIX: `x${randomUUID().replace(/-/g, '').slice(0, 12)}`,
    SYNC_LAG_SECONDS: '0',
    ...extra,
  });
}

async function connector(extra: Record<string, string> = {}): Promise<Connector> {
  return createConnector(loadConfig(settings(extra)), { deadLetters: new MemoryDeadLetterStore() });
}

/**
 * The default types a first run takes from the export, in reference order: every one but the two
 * read whole on a first run (DocumentReference, DiagnosticReport: pre-1970 dates the export, which
 * starts at the epoch, never carries; resource-types.ts connectorExports / exportsWindows).
 */
const exportedTypes = () => [
  'Organization',
  'Practitioner',
  'Location',
  'Patient',
  'Encounter',
  'Condition',
  'Observation',
  'Immunization',
  'Procedure',
  'MedicationRequest',
  'AllergyIntolerance',
];
/** What a reconciliation (everything, no lower bound) exports: the types whose export never misses a row. */
const reconcileExported = [
  'Organization',
  'Practitioner',
  'Patient',
  'Encounter',
  'Condition',
  'Observation',
  'Immunization',
  'AllergyIntolerance',
];

/** A first run (no watermark): read by $export, falling back to search where the export fails. */
async function firstRun(extra: Record<string, string> = {}) {
  const outcome = await incrementalSync(await connector(extra), {}, (m) => logs.push(m)).run({ trigger: 'cli' });
  if (outcome.skipped) throw new Error('skipped');
  return outcome.value;
}

async function emptyTarget(): Promise<void> {
  const c = await connector();
  for (const type of ['Observation', 'Patient']) {
    const ids = (await stack.ahds.snapshot(type)).map((r) => r.id!);
    for (let i = 0; i < ids.length; i += 20) await Promise.all(ids.slice(i, i + 20).map((id) => c.writer.delete(type, id)));
  }
}

const diff = () => targetDiff(stack, mapperFor(settings()));
const clean = { missing: [], stale: [], extra: [] };
const fileId = (url: string) => url.split('/').pop()!;
/** The Binary id of a type's output in a status body. */
function outputOf(body: Record<string, any>, type: string): string {
  return fileId(body.output.find((o: { type: string }) => o.type === type).url);
}

test('a clean export: status and Binary URLs on the stand-in origin (site_addr_oath) are mapped onto the configured base, type= and _type both sent, the job deleted', async () => {
  const summary = await firstRun();
  expect(summary.windows.Patient).toMatchObject({ via: 'export', closed: true });
  expect(summary.windows.Observation).toMatchObject({ via: 'export', closed: true });
  expect(await diff()).toEqual(clean);
  const kickoff = proxy.requests.find((r) => r.path.includes('/$export'))!;
  const query = new URL(kickoff.path, 'http://x').searchParams;
  // Every carried type whose export gives the rows its search would, in reference order.
  const exported = exportedTypes();
  for (const type of exported) expect([type, summary.windows[type]]).toMatchObject([type, { via: 'export', closed: true }]);
  expect(query.get('type')).toBe(exported.join(','));
  expect(query.get('_type')).toBe(exported.join(','));
  expect(query.getAll('_since')).toHaveLength(1);
  // Every status poll and Binary download went to the configured base, with the token.
  expect(proxy.count('GET', /\/fhir\/Binary\//)).toBe(exported.length);
  expect(proxy.requests.filter((r) => /Binary|bulkdata-status/.test(r.path)).every((r) => r.authorized)).toBe(true);
  expect(proxy.count('DELETE', /\$bulkdata-status/)).toBe(1);
});

test('an exported resource pointing at an Encounter OpenEMR does not have is held back and dead-lettered saying why', async () => {
  const store = stack.openemr.store;
  const missingEncounter = randomUUID();
  const heldId = randomUUID();
  store.put({
    ...store.get('Immunization', store.ids('Immunization')[2]!)!,
    id: heldId,
    encounter: { reference: `Encounter/${missingEncounter}` },
  });
  try {
    const summary = await firstRun();
    expect(summary.windows.Immunization).toMatchObject({ via: 'export', closed: true });
    expect(summary.failures).toEqual([
      {
        resourceType: 'Immunization',
        id: heldId,
        stage: 'read',
        reason: `Not written because OpenEMR has no Encounter/${missingEncounter} (the Immunization's encounter).`,
      },
    ]);
    expect(await stack.ahds.read('Immunization', mapperFor(settings()).targetId('Immunization', heldId))).toBeUndefined();
  } finally {
    store.delete('Immunization', heldId);
  }
});

test('a type absent from output (error[] entries name no type) is read by search in its place; the types in output stay exported', async () => {
  proxy.reset({
    status: (body) => ({
      ...body,
      output: body.output.filter((o: { type: string }) => o.type !== 'Patient'),
      error: [{ type: 'OperationOutcome', url: `${proxy.url}/apis/default/fhir/Binary/timeout-1` }],
    }),
  });
  const summary = await firstRun();
  expect(summary.windows.Patient).toMatchObject({ via: 'search', closed: true });
  expect(logs.join('\n')).toContain(`finished ${exportedTypes().length - 1} of ${exportedTypes().length} types (1 error entries`);
  expect(logs.join('\n')).toContain('reading Patient with searches instead.');
  for (const type of exportedTypes().filter((t) => t !== 'Patient'))
    expect([type, summary.windows[type]]).toMatchObject([type, { via: 'export', closed: true }]);
  expect(proxy.count('GET', /\/fhir\/Binary\//)).toBe(exportedTypes().length - 1);
  expect(proxy.count('DELETE', /\$bulkdata-status/)).toBe(1);
  expect(await diff()).toEqual(clean);
});

test('an expected type missing from output (no error[]) is searched, never closed as "no changes"', async () => {
  proxy.reset({ status: (body) => ({ ...body, output: body.output.filter((o: { type: string }) => o.type !== 'Observation') }) });
  const summary = await firstRun();
  expect(summary.windows.Observation).toMatchObject({ via: 'search', closed: true });
  expect(summary.windows.Patient).toMatchObject({ via: 'export', closed: true });
  expect(logs.join('\n')).toMatch(/reading Observation with searches instead/);
  expect(await diff()).toEqual(clean);
});

/**
 * The stand-in's own 2-minute budget (bulk-export.ts, as FhirOperationExportRestController.php
 * :408-426 runs it): at 1 ms per resource, a budget that runs out half-way through Observation's
 * file. The connector asks for its types in reference order (the directory, Patient, Encounter,
 * Condition, Observation, ...) and the stand-in, like OpenEMR, exports the `type=` list as written,
 * so the types before Observation finish; Observation gets the timeout error file and every later
 * type an inline OperationOutcome in error[].
 */
/** What a budget cutting Observation lets finish: the exported types before it in reference order. */
const finishedOf = (exported: string[]) => exported.slice(0, exported.indexOf('Observation')) as SupportedType[];
const FINISHED = finishedOf(exportedTypes());
async function withBudgetCuttingObservation<T>(finished: SupportedType[], body: () => Promise<T>): Promise<T> {
  const n = (t: SupportedType) => stack.openemr.store.ids(t).length;
  const budget = finished.reduce((sum, t) => sum + n(t), 0) + Math.floor(n('Observation') / 2);
  stack.openemr.store.configureExport({ timeBudgetMs: budget, msPerResource: 1 });
  try {
    return await body();
  } finally {
    stack.openemr.store.configureExport({ timeBudgetMs: 120_000, msPerResource: 0 });
  }
}
/** The types in the status body's output[], as the stand-in sent it. */
const outputTypes = (seen: string[][]) => (body: Record<string, any>) => (
  seen.push(body.output.map((o: { type: string }) => o.type)),
  body
);

describe('an export cut off by the time budget part-way keeps what it finished and searches only the rest', () => {
  test('the finished types come from the export, only the unfinished ones are searched; target = source', async () => {
    const patients = stack.openemr.store.ids('Patient').length;
    // The old fallback, for comparison: every type searched.
    stack.openemr.resetStats();
    await firstRun({ OPENEMR_EXPORT: 'false' });
    const searchAll = stack.openemr.stats();
    await emptyTarget();

    const seen: string[][] = [];
    proxy.reset({ status: outputTypes(seen) });
    stack.openemr.resetStats();
    const summary = await withBudgetCuttingObservation(FINISHED, () => firstRun());
    const stats = stack.openemr.stats();
    const unfinished = exportedTypes().filter((t) => !(FINISHED as string[]).includes(t));
    expect(seen).toEqual([FINISHED]);
    expect(logs.join('\n')).toContain(
      `finished ${FINISHED.length} of ${exportedTypes().length} types (${unfinished.length} error entries: OpenEMR stops an export after 2 minutes); reading ${unfinished.join(', ')} with searches instead.`,
    );
    for (const type of FINISHED) expect([type, summary.windows[type]]).toMatchObject([type, { via: 'export', closed: true }]);
    for (const type of unfinished) expect([type, summary.windows[type]]).toMatchObject([type, { via: 'search', closed: true }]);
    // Requests per type at the stand-in: none for a finished type (Patient: only the id listing the
    // per-Patient searches walk, one page per 200), one per Patient at least for each unfinished one.
    const route = (t: string) => stats.byRoute[`GET /fhir/${t}`] ?? 0;
    for (const type of FINISHED.filter((t) => t !== 'Patient')) expect([type, route(type)]).toEqual([type, 0]);
    expect(route('Patient')).toBeLessThanOrEqual(Math.ceil(patients / 200) + 1);
    for (const type of unfinished) expect(route(type)).toBeGreaterThanOrEqual(patients);
    expect(stats.byRoute['GET /fhir/$export']).toBe(1);
    expect(stats.byRoute['GET /fhir/Binary/{id}']).toBe(FINISHED.length);
    // The searches the partial export spared (Encounter and Condition per Patient each, among others).
    expect(searchAll.byRoute['GET /fhir/Encounter']).toBeGreaterThanOrEqual(patients);
    expect(stats.requests).toBeLessThan(searchAll.requests);
    expect(await diff()).toEqual(clean);
  });

  test("an unfinished type's window closes only after its search succeeded: a failing search leaves it open, the finished types closed", async () => {
    const prefix = `x${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    proxy.reset({ failSearch: /\/fhir\/Observation\?/ });
    await expect(withBudgetCuttingObservation(FINISHED, () => firstRun({ SYNC_TABLE_PREFIX: prefix }))).rejects.toThrow();
    proxy.reset();
    const next = await firstRun({ SYNC_TABLE_PREFIX: prefix });
    // Closed in the failed run, from the export: the next window starts where that one ended.
    const initial = '1970-01-01T00:00:00.000Z'; // SYNC_INITIAL_SINCE: a window never closed starts there
    for (const type of FINISHED) expect([type, next.windows[type]?.since]).not.toEqual([type, initial]);
    for (const type of FINISHED) expect([type, next.windows[type]?.since]).toEqual([type, expect.any(String)]);
    // Never closed: read from the beginning again.
    for (const type of exportedTypes().filter((t) => !(FINISHED as string[]).includes(t)))
      expect([type, next.windows[type]?.since]).toEqual([type, initial]);
    expect(await diff()).toEqual(clean);
  });
});

test('a file that breaks off mid-way: its type is read by search, every other type stays exported', async () => {
  let observationFile = '';
  proxy.reset({
    status: (body) => ((observationFile = outputOf(body, 'Observation')), body),
    binary: (id) => (id === observationFile ? 'cut' : 'serve'),
  });
  const summary = await firstRun();
  expect(summary.windows.Patient).toMatchObject({ via: 'export', closed: true });
  expect(summary.windows.Observation).toMatchObject({ via: 'search', closed: true });
  expect(summary.windows.Immunization).toMatchObject({ via: 'export', closed: true });
  expect(logs.join('\n')).toMatch(/bulk export file could not be read \(.*\)\. Reading Observation with a search instead\./);
  expect(proxy.count('DELETE', /\$bulkdata-status/)).toBe(1);
  expect(await diff()).toEqual(clean);
});

test('an expired file (OpenEMR after an hour: 404 with an empty body) falls back to search', async () => {
  proxy.reset({ binary: () => 'expire' });
  const summary = await firstRun();
  expect(summary.windows.Patient).toMatchObject({ via: 'search', closed: true });
  expect(summary.windows.Observation).toMatchObject({ via: 'search', closed: true });
  expect(await diff()).toEqual(clean);
});

test('deleted[] is applied: the resources it names are deleted in the target', async () => {
  await firstRun();
  const store = stack.openemr.store;
  const gone = store.ids('Observation')[0]!;
  const snapshot = store.get('Observation', gone)!;
  expect(await stack.ahds.read('Observation', mapperFor(settings()).targetId('Observation', gone))).toBeDefined();
  store.delete('Observation', gone);
  const deletions = JSON.stringify({
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [{ request: { method: 'DELETE', url: `Observation/${gone}` } }],
  });
  proxy.reset({
    files: { '/apis/default/fhir/Binary/deleted-1': `${deletions}\n` },
    status: (body, url) => ({ ...body, deleted: [{ type: 'Bundle', url: `${url}/apis/default/fhir/Binary/deleted-1` }] }),
  });
  try {
    const summary = await firstRun();
    expect(summary.windows.Observation).toMatchObject({ via: 'export', closed: true });
    expect(summary.message).toBe('1 resource(s) deleted in the target: the export listed them in deleted[].');
    expect(await stack.ahds.read('Observation', mapperFor(settings()).targetId('Observation', gone))).toBeUndefined();
    expect(await diff()).toEqual(clean);
  } finally {
    store.put(snapshot);
  }
});

test('a file on a foreign host that needs the token is not fetched (no token leaves the FHIR base) and is read by search', async () => {
  proxy.reset({
    status: (body) => ({
      ...body,
      output: body.output.map((o: { type: string; url: string }) =>
        o.type === 'Observation' ? { ...o, url: `${foreign.url}/files/${fileId(o.url)}` } : o,
      ),
    }),
  });
  const summary = await firstRun();
  expect(foreign.hits).toHaveLength(0);
  expect(summary.windows.Observation).toMatchObject({ via: 'search', closed: true });
  expect(logs.join('\n')).toMatch(/outside its FHIR base that needs the access token/);
  expect(await diff()).toEqual(clean);
});

test('a file on a foreign host with requiresAccessToken false is fetched without the token', async () => {
  const store = stack.openemr.store;
  foreign.body =
    store
      .ids('Observation')
      .map((id) => JSON.stringify(store.get('Observation', id)))
      .join('\n') + '\n';
  proxy.reset({
    status: (body) => ({
      ...body,
      requiresAccessToken: false,
      output: body.output.map((o: { type: string; url: string }) =>
        o.type === 'Observation' ? { ...o, url: `${foreign.url}/files/obs.ndjson` } : o,
      ),
    }),
  });
  const summary = await firstRun();
  expect(foreign.hits).toEqual([{ method: 'GET', path: '/files/obs.ndjson', authorized: false }]);
  expect(summary.windows.Observation).toMatchObject({ via: 'export', closed: true });
  expect(await diff()).toEqual(clean);
});

test('429 while polling: Retry-After in seconds and as an HTTP-date are both honoured, and the export completes', async () => {
  proxy.reset({
    polls: [
      { status: 429, headers: { 'Retry-After': '1' } },
      { status: 202, headers: { 'Retry-After': new Date(Date.now() + 1000).toUTCString(), 'X-Progress': 'Patient' } },
    ],
  });
  const summary = await firstRun();
  expect(summary.windows.Patient).toMatchObject({ via: 'export', closed: true });
  expect(summary.windows.Observation).toMatchObject({ via: 'export', closed: true });
  // Two answers asked to wait, then the manifest: three polls, the kick-off once.
  expect(proxy.count('GET', /\$bulkdata-status/)).toBe(3);
  expect(proxy.count('GET', /\/fhir\/\$export/)).toBe(1);
  expect(await diff()).toEqual(clean);
});

test('a failed kick-off is never retried (a retry would run a second full export on OpenEMR) and the window is read by search', async () => {
  proxy.reset({ kickoffStatus: 503 });
  const summary = await firstRun();
  expect(proxy.count('GET', /\/fhir\/\$export/)).toBe(1);
  expect(summary.windows.Patient).toMatchObject({ via: 'search', closed: true });
  expect(await diff()).toEqual(clean);
});

test('OPENEMR_EXPORT=false reads by search only', async () => {
  const summary = await firstRun({ OPENEMR_EXPORT: 'false' });
  expect(proxy.count('GET', /\$export/)).toBe(0);
  expect(summary.windows.Observation).toMatchObject({ via: 'search', closed: true });
  expect(await diff()).toEqual(clean);
});

describe('reconcile in delete mode deletes nothing on evidence that may be incomplete', () => {
  const reconcileWith = async (extra: Record<string, string> = {}) => {
    const c = await connector(extra);
    return reconcile(
      {
        sync: c.sync,
        reader: c.reader,
        writer: c.writer,
        telemetry: c.telemetry,
        pageSize: 200,
        deleteMode: 'delete',
        log: (m) => logs.push(m),
      },
      { trigger: 'reconcile' },
    );
  };

  test('an export with error[]: the source is read by search instead and nothing is deleted', async () => {
    await firstRun();
    const target = (await stack.ahds.snapshot()).length;
    proxy.reset({ status: (body) => ({ ...body, output: [], error: [{ type: 'OperationOutcome', url: `${proxy.url}/x` }] }) });
    const summary = await reconcileWith();
    expect(summary.via).toBe('search');
    expect(summary.byType.Patient).toMatchObject({ deletedAtSource: 0, deleted: 0 });
    expect(summary.byType.Observation).toMatchObject({ deletedAtSource: 0, deleted: 0 });
    expect((await stack.ahds.snapshot()).length).toBe(target);
  });

  test('an export cut off part-way: an unfinished type is searched and deleted only on that evidence, never for its absence from output[]', async () => {
    await firstRun();
    const store = stack.openemr.store;
    const gone = store.ids('Observation')[0]!;
    const snapshot = store.get('Observation', gone)!;
    const observations = (await stack.ahds.snapshot('Observation')).length;
    store.delete('Observation', gone);
    const seen: string[][] = [];
    proxy.reset({ status: outputTypes(seen) });
    try {
      const summary = await withBudgetCuttingObservation(finishedOf(reconcileExported), () => reconcileWith());
      expect(seen).toEqual([finishedOf(reconcileExported)]);
      expect(summary.via).toBe('search');
      // The one Observation OpenEMR no longer has, found by the search; none for the export's silence.
      expect(summary.byType.Observation).toMatchObject({ deletedAtSource: 1, deleted: 1 });
      expect(summary.byType.Patient).toMatchObject({ deletedAtSource: 0, deleted: 0 });
      expect((await stack.ahds.snapshot('Observation')).length).toBe(observations - 1);
      expect(await stack.ahds.read('Observation', mapperFor(settings()).targetId('Observation', gone))).toBeUndefined();
    } finally {
      store.put(snapshot);
    }
  });

  test('an empty answer to a search of a non-empty table (as 7.0.2 gives any paged search): deletes withheld with the reason', async () => {
    await firstRun();
    const target = (await stack.ahds.snapshot()).length;
    proxy.reset({ emptySearch: /\/fhir\/(Patient|Observation)\?/ });
    const summary = await reconcileWith({ OPENEMR_EXPORT: 'false' });
    expect(summary.byType.Patient).toMatchObject({ source: 0, deleted: 0 });
    expect(summary.byType.Patient.deletedAtSource).toBeGreaterThan(0);
    expect(summary.byType.Observation.deleted).toBe(0);
    expect(summary.deletesWithheld?.join(' ')).toMatch(/Patient deletion\(s\) withheld: OpenEMR answered no Patient at all/);
    expect((await stack.ahds.snapshot()).length).toBe(target);
  });
  // FhirOperationExportRestController.php:176 (epoch when no _since) and
  // FhirBulkExportDomainResourceTrait.php:71-73 (`_lastUpdated=ge` on the service's column): an
  // order whose procedure_report.date_report is NULL never leaves an export. Reconcile reads
  // everything, so it exports only the types whose column is never NULL and searches the rest.
  test('reconcile exports the never-NULL types and searches the rest: a Procedure with a NULL report date still reaches the target', async () => {
    await firstRun();
    const template = stack.openemr.store.get('Procedure', stack.openemr.store.ids('Procedure')[0]!)!;
    const undated = { ...template, id: randomUUID() };
    stack.openemr.store.put(undated, { lastUpdated: null });
    try {
      proxy.reset();
      const summary = await reconcileWith();
      const kickoff = proxy.requests.find((r) => r.path.includes('/$export'))!;
      expect(new URL(kickoff.path, 'http://x').searchParams.get('type')).toBe(reconcileExported.join(','));
      expect(summary.via).toBe('export');
      expect(summary.byType.Procedure).toMatchObject({ missing: 1, deleted: 0 });
      expect(await stack.ahds.read('Procedure', mapperFor(settings()).targetId('Procedure', undated.id))).toBeDefined();
      expect(await diff()).toEqual(clean);
    } finally {
      stack.openemr.store.delete('Procedure', undated.id);
    }
  });
});
