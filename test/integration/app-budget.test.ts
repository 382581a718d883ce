/**
 * One budget for the whole app: several worker processes, each allowed 8 bundles in flight by its own
 * limiter, share a Table-storage budget of 3 slots (Azurite). The AHDS stand-in counts the bundles
 * it holds at once: never more than the budget.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startAhdsStandIn, type AhdsStandIn } from '../../stack/ahds';
import { startAzurite, type AzuriteHandle } from '../../stack/azurite';
import { TableBundleBudget } from '../../src/ahds/table-budget';
import { clearConnectorSettings } from '../helpers/functions';

jest.setTimeout(240_000);

const ROOT = path.resolve(__dirname, '..', '..');
/** Runs test/helpers/budget-child.ts from source: TypeScript's transpileModule in a require hook. */
const HOOK = `
const ts = require('typescript');
const fs = require('fs');
require.extensions['.ts'] = (module, filename) => {
  const out = ts.transpileModule(fs.readFileSync(filename, 'utf8'), { fileName: filename, compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } }).outputText;
  module._compile(out, filename);
};
require('./test/helpers/budget-child.ts').main().then((code) => process.exit(code), (e) => { console.error(e); process.exit(1); });
`;

function worker(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ['-e', HOOK], {
    cwd: ROOT,
    env: { ...clearConnectorSettings({ ...process.env }), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, output })));
}

let ahds: AhdsStandIn;
let azurite: AzuriteHandle;
beforeAll(async () => {
  azurite = await startAzurite();
  // Each bundle of 5 entries stays 250 ms in the server, so the workers' bundles overlap.
  ahds = await startAhdsStandIn({ requireAuth: false, faults: { perEntryLatencyMs: 50 } });
});
afterAll(async () => {
  await ahds?.close();
  await azurite?.close();
});

test('workers in separate processes never hold more bundles toward AHDS than the app-wide budget', async () => {
  const slots = 3;
  const common = {
    BUDGET_FHIR_URL: ahds.fhirUrl,
    BUDGET_STORAGE: azurite.connectionString,
    BUDGET_TABLE: 'budgettest',
    BUDGET_SLOTS: String(slots),
    BUDGET_BUNDLES: '8',
  };
  const results = await Promise.all(['a', 'b', 'c'].map((w) => worker({ ...common, BUDGET_WORKER: w })));
  for (const r of results) expect(r.code).toBe(0);
  const summaries = results.map((r) => JSON.parse(r.output.trim().split('\n').pop()!) as { written: number; peak: number });
  expect(summaries.map((s) => s.written)).toEqual([40, 40, 40]);
  // Each process alone would have sent 8 at once (24 together); the stand-in never held more than 3.
  expect(summaries.every((s) => s.peak === 8)).toBe(true);
  expect(ahds.stats().byStatus['200']).toBe(24);
  expect(ahds.cap.peak).toBeLessThanOrEqual(slots);
  expect(ahds.cap.peak).toBeGreaterThanOrEqual(2); // the slots were shared, not one process at a time
});

test('a storage outage skips the budget for a minute instead of failing writes', async () => {
  let tableCalls = 0;
  const told: string[] = [];
  let now = 1_000_000;
  const budget = new TableBundleBudget(
    async () => {
      tableCalls++;
      throw Object.assign(new Error('connect ECONNREFUSED'), { statusCode: undefined });
    },
    3,
    60_000,
    () => now,
    Math.random,
    (m) => told.push(m),
  );
  (await budget.acquire())();
  (await budget.acquire())();
  expect(tableCalls).toBe(1);
  expect(told).toHaveLength(1);
  expect(told[0]).toMatch(/^The app-wide bundle budget \(Table storage\) could not be read/);
  now += 61_000;
  (await budget.acquire())();
  expect(tableCalls).toBe(2);
});
