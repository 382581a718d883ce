/**
 * Load on OpenEMR, in requests per run: the real incremental run and reconciliation against the
 * OpenEMR stand-in (with Azurite for watermarks), counted at the stand-in per route. Printed by
 * `npm run bench` after the throughput figures (skip with --skip-openemr-load), or alone:
 *
 *   node scripts/with-local-ca.js node dist/scripts/bench/openemr-load.js [--patients N]
 *
 * Counts, not times: the figures are the same on any machine for the same data.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { loadConfig } from '../../src/config/load';
import { createConnector, type Connector } from '../../src/connector';
import { MemoryDeadLetterStore } from '../../src/sync/dead-letters';
import { incrementalSync } from '../../src/sync/incremental';
import { reconcile } from '../../src/sync/reconcile';
import { startStack, type Stack } from '../../stack';
import type { SupportedType } from '../../stack/openemr';

export interface LoadRow {
  scenario: string;
  changed: number;
  openemrRequests: number;
  byRoute: Record<string, number>;
}

/** Runs the load scenarios and returns one row per run (also logged as a table). */
export async function openemrLoadBench(log: (line: string) => void, options: { patients?: number } = {}): Promise<LoadRow[]> {
  const extraPatients = options.patients ?? 2000;
  const stack = await startStack({ azurite: true });
  const rows: LoadRow[] = [];
  try {
    const store = stack.openemr.store;
    const template = store.get('Patient', store.ids('Patient')[0]!)! as Record<string, unknown>;
    // More Patients: a crowded second of 450 (the 7.0.3 upgrade's legacy rows), the rest a minute apart.
    const base = store.now() - extraPatients * 60_000;
    store.importResources(
      Array.from({ length: extraPatients }, (_, i) => ({
        ...template,
        id: randomUUID(),
        identifier: [],
        meta: { lastUpdated: new Date(i < 450 ? base : base + i * 60_000).toISOString() },
      })) as never,
    );
    const settings = {
      ...stack.env,
      SYNC_TABLE_PREFIX: 'load',
      SYNC_LAG_SECONDS: '0',
      SYNC_OVERLAP_SECONDS: '300',
      RETRY_BASE_DELAY_MS: '20',
    };
    const connector = await createConnector(loadConfig(settings), { deadLetters: new MemoryDeadLetterStore() });
    const measure = async (scenario: string, changed: number, run: (c: Connector) => Promise<unknown>) => {
      stack.openemr.resetStats();
      await run(connector);
      const stats = stack.openemr.stats();
      rows.push({ scenario, changed, openemrRequests: stats.requests, byRoute: stats.byRoute });
    };
    const incremental = async (c: Connector) => {
      const outcome = await incrementalSync(c).run({ trigger: 'cli' });
      if (outcome.skipped || outcome.value.status === 'failed') throw new Error('incremental run failed');
    };
    // Every carried type (SYNC_RESOURCE_TYPES): the first run reads them all.
    const carried = connector.config.sync.resourceTypes as SupportedType[];
    await measure(
      'first run ($export)',
      carried.reduce((n, t) => n + store.count(t), 0),
      incremental,
    );
    store.advanceClock(10);
    await measure('no change', 0, incremental);
    for (const k of [10, 200, 1000, 3000]) {
      store.advanceClock(10);
      changeObservations(stack, k);
      await measure(`${k} Observations changed`, k, incremental);
    }
    store.advanceClock(10);
    // Patients edited over 100 seconds, ten a second.
    store
      .ids('Patient')
      .slice(0, 1000)
      .forEach((id, i) => {
        if (i % 10 === 0) store.advanceClock(1);
        store.put({ ...store.get('Patient', id)!, gender: 'unknown' } as never);
      });
    await measure('1000 Patients changed', 1000, incremental);
    const deps = (c: Connector) => ({
      sync: c.sync,
      reader: c.reader,
      writer: c.writer,
      telemetry: c.telemetry,
      pageSize: 200,
      deleteMode: 'report-only' as const,
    });
    await measure('reconcile ($export)', 0, (c) => reconcile(deps(c), { trigger: 'reconcile' }));
    const searchOnly = await createConnector(loadConfig({ ...settings, OPENEMR_EXPORT: 'false' }), {
      deadLetters: new MemoryDeadLetterStore(),
    });
    stack.openemr.resetStats();
    await reconcile(deps(searchOnly), { trigger: 'reconcile' });
    const stats = stack.openemr.stats();
    rows.push({ scenario: 'reconcile (search, export off)', changed: 0, openemrRequests: stats.requests, byRoute: stats.byRoute });

    // A first run whose export OpenEMR's 2-minute budget cuts off half-way through Observation (1 ms
    // a resource): Patient, Encounter and Condition come from it, the unfinished types are searched.
    const cutAt = ['Patient', 'Encounter', 'Condition'].reduce((n, t) => n + store.count(t as SupportedType), 0);
    store.configureExport({ timeBudgetMs: cutAt + Math.floor(store.count('Observation') / 2), msPerResource: 1 });
    try {
      const cut = await createConnector(loadConfig({ ...settings, SYNC_TABLE_PREFIX: 'loadcut' }), {
        deadLetters: new MemoryDeadLetterStore(),
      });
      stack.openemr.resetStats();
      await incremental(cut);
      const cutStats = stack.openemr.stats();
      rows.push({
        scenario: 'first run (export cut off)',
        changed: carried.reduce((n, t) => n + store.count(t), 0),
        openemrRequests: cutStats.requests,
        byRoute: cutStats.byRoute,
      });
    } finally {
      store.configureExport({ timeBudgetMs: 120_000, msPerResource: 0 });
    }

    log(
      `OpenEMR load per run (${carried.map((t) => `${store.count(t)} ${t}`).join(', ')}; requests counted at the stand-in, token requests included):`,
    );
    log(`  ${'run'.padEnd(32)} ${'changed'.padStart(8)} ${'requests'.padStart(9)}  by route`);
    for (const r of rows)
      log(
        `  ${r.scenario.padEnd(32)} ${String(r.changed).padStart(8)} ${String(r.openemrRequests).padStart(9)}  ${Object.entries(r.byRoute)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}`,
      );
    return rows;
  } finally {
    await stack.close();
  }
}

/** k Observations get a new status (and so a new lastUpdated), spread over the Patients. */
function changeObservations(stack: Stack, k: number): void {
  const store = stack.openemr.store;
  const ids = store.ids('Observation');
  const step = Math.max(1, Math.floor(ids.length / k));
  for (let i = 0, n = 0; n < k && i < ids.length; i += step, n++) {
    const o = store.get('Observation', ids[i]!)! as Record<string, unknown>;
    store.put({ ...o, status: o.status === 'amended' ? 'final' : 'amended' } as never);
  }
}

if (require.main === module) {
  const { values } = parseArgs({ options: { patients: { type: 'string', default: '2000' } } });
  openemrLoadBench((line) => process.stderr.write(`${line}\n`), { patients: Number(values.patients) }).then(
    (rows) => process.stdout.write(`${JSON.stringify(rows)}\n`),
    (error: unknown) => {
      process.stderr.write(`${(error as Error)?.message ?? error}\n`);
      process.exitCode = 1;
    },
  );
}
