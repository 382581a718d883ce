import { randomUUID } from 'node:crypto';
import { syncRunHandler } from '../../functions/sync-run';
import { loadConfig } from '../../src/config/load';
import { createConnector, type Connector } from '../../src/connector';
import { UnsupportedReleaseError } from '../../src/openemr/reader';
import { releaseOf } from '../../src/openemr/releases';
import { MemoryDeadLetterStore } from '../../src/sync/dead-letters';
import { incrementalSync } from '../../src/sync/incremental';
import { reconcile } from '../../src/sync/reconcile';
import { startStack, type Stack } from '../../stack';
import type { OpenEmrVersion } from '../../stack/openemr';
import { invoke, useStack } from '../helpers/functions';
import { incrementalSettings, mapperFor, reconcileBySearch, targetDiff, trimSource } from '../helpers/incremental-stack';

/**
 * The whole incremental scenario against each OpenEMR release the stand-in models (the README's
 * compatibility matrix): a first run, edits, a back-dated lab (OpenEMR filters labs on
 * procedure_report.report_date, a clinical date), a lab whose report date is NULL (never matched,
 * never exported: only the per-Patient reconciliation finds it), an address change that does not move
 * patient_data.last_updated, a deletion, a lab correction, then reconciliation. It ends with
 * target = source on 7.0.3, 7.0.4 and master; 7.0.2 is refused with its sentence.
 */

jest.setTimeout(300_000);

const SUPPORTED: OpenEmrVersion[] = ['7.0.3', '7.0.4', 'master'];

async function connectorFor(stack: Stack, deadLetters = new MemoryDeadLetterStore()): Promise<Connector> {
  const settings = incrementalSettings(stack, {
    SYNC_TABLE_PREFIX: `r${randomUUID().replace(/-/g, '').slice(0, 10)}`,
    SYNC_LAG_SECONDS: '0',
    SYNC_OVERLAP_SECONDS: '60',
  });
  return createConnector(loadConfig(settings), { deadLetters });
}

describe.each(SUPPORTED)('OpenEMR %s', (version) => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ azurite: true, openemr: { version } });
    trimSource(stack, 200);
  });
  afterAll(() => stack?.close());

  test('full sync, edits, a back-dated lab, an address change, a deletion and a lab correction, then reconcile: target = source', async () => {
    const connector = await connectorFor(stack);
    const diff = () => targetDiff(stack, mapperFor(incrementalSettings(stack)));
    const runOnce = async () => {
      const outcome = await incrementalSync(connector).run({ trigger: 'cli' });
      if (outcome.skipped) throw new Error('skipped');
      return outcome.value;
    };
    const first = await runOnce();
    expect(first.status).toBe('ok');
    // Every carried type (SYNC_RESOURCE_TYPES, default: the table's default rows) has its own window, closed on this release.
    const types = connector.config.sync.resourceTypes;
    expect(Object.keys(first.windows)).toEqual(types);
    for (const type of types) expect([type, first.windows[type]?.closed]).toEqual([type, true]);
    expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });

    const store = stack.openemr.store;
    store.advanceClock(120);
    const [p1, p2] = store.ids('Patient');
    const [o1, o2, o3, o4] = store.ids('Observation');
    // An edit that moves lastUpdated, and a new Observation.
    store.put({ ...store.get('Patient', p1!)!, gender: 'unknown' } as never);
    const fresh = randomUUID();
    store.put({ ...store.get('Observation', o1!)!, id: fresh } as never);
    // A lab filed now with last month's report date: before the window, invisible to _lastUpdated.
    const backDated = randomUUID();
    store.put({ ...store.get('Observation', o2!)!, id: backDated } as never, { lastUpdated: Math.floor(store.now() / 1000) - 30 * 86_400 });
    // A lab whose report date is NULL: never matched by _lastUpdated, never exported.
    const nullDated = randomUUID();
    store.put({ ...store.get('Observation', o2!)!, id: nullDated } as never, { lastUpdated: null });
    // An address change: contact_address moves, patient_data.last_updated does not.
    const patient2 = store.get('Patient', p2!)! as Record<string, any>;
    store.importResources([
      { ...patient2, address: [{ line: ['1 Changed Street'], city: 'Elsewhere', postalCode: '00000', country: 'US' }] } as never,
    ]);
    store.delete('Observation', o3!);
    store.labCorrection(o4!, { status: 'corrected' });
    store.advanceClock(5);

    const second = await runOnce();
    expect(second.status).toBe('ok');
    const after = await diff();
    // What _lastUpdated sees has arrived; what it cannot see waits for reconciliation.
    expect(after.missing.sort()).toEqual([`Observation/${backDated}`, `Observation/${nullDated}`].sort());
    expect(after.stale.sort()).toEqual([`Observation/${o4}`, `Patient/${p2}`].sort());
    expect(after.extra).toEqual([`Observation/${o3}`]);

    const summary = await reconcileBySearch(connector);
    expect(summary.byType.Observation).toMatchObject({ missing: 2, stale: 1, deletedAtSource: 1, deleted: 1 });
    expect(summary.byType.Patient).toMatchObject({ stale: 1, missing: 0, deleted: 0 });
    expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });
  });

  test('an incremental run with nothing changed costs a handful of requests', async () => {
    const connector = await connectorFor(stack);
    await incrementalSync(connector).run({ trigger: 'cli' });
    stack.openemr.store.advanceClock(1);
    stack.openemr.resetStats();
    const before = connector.reader.requests;
    const outcome = await incrementalSync(connector).run({ trigger: 'cli' });
    expect(outcome.skipped).toBe(false);
    // /metadata and one read per carried type (the token is cached), with one to spare.
    const types = connector.config.sync.resourceTypes.length;
    expect(connector.reader.requests - before).toBeLessThanOrEqual(2 + types);
    expect(stack.openemr.stats().requests).toBeLessThanOrEqual(3 + types);
  });
});

describe('OpenEMR 7.0.2', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ azurite: true, openemr: { version: '7.0.2' } });
    trimSource(stack, 50);
  });
  afterAll(() => stack?.close());

  test('is refused with one sentence naming the release and why, before anything is read or written', async () => {
    const connector = await connectorFor(stack);
    stack.openemr.resetStats();
    await expect(incrementalSync(connector).run({ trigger: 'cli' })).rejects.toThrow(UnsupportedReleaseError);
    await expect(incrementalSync(connector).run({ trigger: 'cli' })).rejects.toThrow(
      /^OpenEMR 7\.0\.2 is not supported: it answers every paged or sorted FHIR search with an empty result.*upgrade OpenEMR to 7\.0\.3 or later\.$/,
    );
    await expect(
      reconcile(
        {
          sync: connector.sync,
          reader: connector.reader,
          writer: connector.writer,
          telemetry: connector.telemetry,
          pageSize: 200,
          deleteMode: 'delete',
        },
        { trigger: 'reconcile' },
      ),
    ).rejects.toThrow(/OpenEMR 7\.0\.2 is not supported/);
    // Only /metadata (and no token: it needs none) was asked; nothing reached AHDS.
    expect(Object.keys(stack.openemr.stats().byRoute).every((r) => /metadata/.test(r))).toBe(true);
    expect((await stack.ahds.snapshot()).length).toBe(0);
  });

  test('the sync endpoint answers with the sentence', async () => {
    useStack(stack, { SYNC_TABLE_PREFIX: 'r702' });
    const answer = await invoke(syncRunHandler, { url: 'sync/run' });
    expect(answer.status).toBe(502);
    expect(answer.json.issue[0].diagnostics).toMatch(
      /^OpenEMR refused the request: OpenEMR 7\.0\.2 is not supported: .*upgrade OpenEMR to 7\.0\.3 or later\.$/,
    );
  });
});

test('release table: 7.0.2.x refused (7.0.2.2 names only paging), 7.0.3 and later and unknown versions served', () => {
  expect(releaseOf('7.0.2').refusal).toMatch(/cannot filter Observations or exports by _lastUpdated/);
  expect(releaseOf('7.0.2.2').refusal).not.toMatch(/cannot filter/);
  expect(releaseOf('7.0.2.3').refusal).toMatch(/^OpenEMR 7\.0\.2\.3 is not supported/);
  for (const v of ['7.0.3', '7.0.3.4', '7.0.4', '8.0.0', '8.2.0-dev', undefined, 'fork']) expect(releaseOf(v).refusal).toBeUndefined();
});
