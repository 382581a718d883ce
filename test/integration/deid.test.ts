/**
 * De-identification end to end against the AHDS stand-in (the HAPI tier runs the same audit against
 * a real HAPI server, test/hapi/deid.test.ts): DEID_MODE=on, a sync of every type the OpenEMR
 * stand-in serves and the connector carries, then the target audited from the outside
 * (test/helpers/deid-audit.ts).
 */
import { syncRunHandler } from '../../functions/sync-run';
import type { Stack } from '../../stack';
import { auditDeidentified, expectClean } from '../helpers/deid-audit';
import { DEID_TYPES, FREE_TEXT_IDS, servedSource, startDeidFeed } from '../helpers/deid-source';
import { invoke } from '../helpers/functions';
import { mapperFor, targetDiff } from '../helpers/incremental-stack';

const TYPES = DEID_TYPES;
const DEID_KEY = 'ahds-deid-test-key-0123456789abcdef0123';
let stack: Stack;
let settings: Record<string, string>;

beforeAll(async () => {
  ({ stack, settings } = await startDeidFeed('deid', DEID_KEY));
}, 120_000);
afterAll(() => stack?.close());

test('a de-identified sync leaves nothing identifying in the target, hashes every id, resolves every reference and moves every date of a patient by one shift', async () => {
  const answer = await invoke(syncRunHandler, { url: 'sync/run' });
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({ status: 'ok', failed: 0, deadLettered: 0 });
  const diff = await targetDiff(stack, mapperFor({ ...stack.env, ...settings }), TYPES);
  expect(diff).toEqual({ missing: [], stale: [], extra: [] });

  const store = stack.openemr.store;
  const source = servedSource(store);
  const written: Array<Record<string, any>> = [];
  for (const type of TYPES) written.push(...((await stack.ahds.snapshot(type)) as Array<Record<string, any>>));
  const audit = auditDeidentified({ source, written, key: DEID_KEY });
  expectClean(audit, { patients: store.count('Patient'), written: written.length });
}, 300_000);

test('the audit finds what it looks for: the same sync without DEID_MODE fails it on names, narrative, notes, ids and dates', () => {
  const store = stack.openemr.store;
  const mapper = mapperFor({ ...stack.env, ...settings, DEID_MODE: 'off' });
  const source = servedSource(store);
  const written = source.flatMap((r) => {
    const outcome = mapper.map(r as never);
    return outcome.ok ? [outcome.resource as unknown as Record<string, any>] : [];
  });
  const audit = auditDeidentified({ source, written, key: DEID_KEY });
  const leaked = new Set(audit.leaks.map((l) => l.split(':')[0]));
  expect(leaked.has(`Condition/${FREE_TEXT_IDS.condition}`)).toBe(true);
  expect(leaked.has(`Observation/${FREE_TEXT_IDS.observation}`)).toBe(true);
  expect([...leaked].filter((l) => l.startsWith('Patient/')).length).toBe(store.count('Patient'));
  expect(audit.unhashedIds.length).toBe(written.length);
});
