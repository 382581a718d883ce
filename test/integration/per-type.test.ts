/**
 * What every carried type must do, parameterised over the table (resource-types.ts): a row added
 * there and carried by default is covered here when it is merged, with no test of its own.
 *
 * - A row back-dated before the window (filed now with an old date column, set through the stand-in's
 *   control API: PUT /_control/<Type>/<id>?lastUpdated=) is invisible to `_lastUpdated`, so the
 *   incremental run cannot see it; reconciliation finds it and the target equals the source again.
 * - A resource whose carried reference OpenEMR cannot resolve is held back and dead-lettered with its
 *   reason; once the target arrives at the source, a replay writes the target and then it.
 */
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../../src/config/load';
import { createConnector, type Connector } from '../../src/connector';
import { MemoryDeadLetterStore } from '../../src/sync/dead-letters';
import { incrementalSync } from '../../src/sync/incremental';
import { replayDeadLetters } from '../../src/sync/replay';
import { referenceTargets } from '../../src/sync/sync-service';
import { RESOURCE_TYPES, orderedTypes } from '../../src/sync/resource-types';
import { workDepsOf } from '../../src/sync/work-queue';
import { startStack, type Stack } from '../../stack';
import type { SupportedType } from '../../stack/openemr';
import { control } from '../helpers/openemr-standin-client';
import { incrementalSettings, mapperFor, reconcileBySearch, targetDiff, trimSource } from '../helpers/incremental-stack';

jest.setTimeout(120_000);

type Json = Record<string, any>;
/** The default types in reference order (as SYNC_RESOURCE_TYPES' default lists them). */
const CARRIED = orderedTypes(RESOURCE_TYPES.filter((t) => t.carriedByDefault).map((t) => t.type));
const CARRIED_TYPES = CARRIED.map((t) => t.type);
/** Every carried reference between carried types: [type, element, target type]. */
const REFERENCES = CARRIED.flatMap((t) =>
  t.references.filter((r) => CARRIED_TYPES.includes(r.type)).map((r) => [t.type, r.element, r.type] as const),
);

let stack: Stack;
let settings: Record<string, string>;
let connector: Connector;
const diff = () => targetDiff(stack, mapperFor(settings));
const runOnce = async () => {
  const outcome = await incrementalSync(connector).run({ trigger: 'cli' });
  if (outcome.skipped) throw new Error('skipped');
  return outcome.value;
};
/**
 * A copy of an existing row of `type` (its references resolve) under a new id; with `element`, of a
 * row that has a `target` reference there when one does (the sample's DiagnosticReports have no result).
 */
const copyOf = (type: string, id: string, element?: string, target?: string): Json => {
  const store = stack.openemr.store;
  const rows = store.ids(type as SupportedType).map((i) => store.get(type as SupportedType, i) as Json);
  const row = (element && rows.find((r) => referenceTargets(r as any, element, target!).length > 0)) || rows[0]!;
  return { ...row, id };
};

/**
 * `resource` with the reference at `element` (a dotted path such as DocumentReference's
 * context.encounter, walked through the first item of a list) pointing at `reference`; a list at
 * the end (context.encounter is 0..*) becomes a list of that one reference.
 */
/** Reference elements that are lists in FHIR R4 (0..*), for a copied row that has none there. */
const LIST_REFERENCES = ['result', 'context.encounter'];
const withReference = (resource: Json, element: string, reference: string): Json => {
  const copy = structuredClone(resource);
  const steps = element.split('.');
  let node: Json = copy;
  for (const step of steps.slice(0, -1)) {
    const next = node[step];
    node = Array.isArray(next) ? next[0] : (node[step] = next ?? {});
  }
  const last = steps.at(-1)!;
  node[last] = Array.isArray(node[last]) || LIST_REFERENCES.includes(element) ? [{ reference }] : { reference };
  return copy;
};

beforeAll(async () => {
  stack = await startStack({ azurite: true });
  trimSource(stack, 60);
  // No overlap: each run reads only what changed since the last (the stand-in's clock moves a few
  // seconds per case, staying near the real one the assertions are signed with).
  settings = incrementalSettings(stack, { SYNC_TABLE_PREFIX: 'pertype', SYNC_LAG_SECONDS: '0', SYNC_OVERLAP_SECONDS: '0' });
  connector = await createConnector(loadConfig(settings), { deadLetters: new MemoryDeadLetterStore() });
  expect(connector.config.sync.resourceTypes).toEqual(CARRIED_TYPES);
  expect((await runOnce()).status).toBe('ok');
  expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });
});
afterAll(() => stack?.close());

test('the table carries at least Patient, Encounter, Condition and Observation by default, and they reference each other', () => {
  expect(CARRIED_TYPES).toEqual(expect.arrayContaining(['Patient', 'Encounter', 'Condition', 'Observation']));
  expect(REFERENCES).toEqual(expect.arrayContaining([['Condition', 'encounter', 'Encounter']]));
});

test.each(CARRIED_TYPES)(
  '%s: a row back-dated before the window is missed by the incremental run and written by reconciliation',
  async (type) => {
    const store = stack.openemr.store;
    const id = randomUUID();
    const monthAgo = new Date(store.now() - 30 * 86_400_000).toISOString();
    const put = await control(stack.openemr, 'PUT', `/${type}/${id}?lastUpdated=${encodeURIComponent(monthAgo)}`, copyOf(type, id));
    expect(put.status).toBe(201);
    store.advanceClock(5);

    const run = await runOnce();
    expect(run).toMatchObject({ status: 'ok', failed: 0 });
    expect((await diff()).missing).toEqual([`${type}/${id}`]);

    const summary = await reconcileBySearch(connector);
    expect(summary.byType[type]).toMatchObject({ missing: 1, stale: 0 });
    expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });
  },
);

test.each(REFERENCES)(
  '%s whose %s (%s) OpenEMR does not have is held back and dead-lettered with its reason, then replayed once it arrives',
  async (type, element, targetType) => {
    const store = stack.openemr.store;
    const id = randomUUID();
    const missing = randomUUID();
    store.advanceClock(2);
    await control(
      stack.openemr,
      'PUT',
      `/${type}/${id}`,
      withReference(copyOf(type, id, element, targetType), element, `${targetType}/${missing}`),
    );
    store.advanceClock(5);

    const run = await runOnce();
    const reason = `Not written because OpenEMR has no ${targetType}/${missing} (the ${type}'s ${element}).`;
    // Its only resource held back: the run failed, and says why.
    expect(run).toMatchObject({ status: 'failed', read: 1, failed: 1, deadLettered: 1 });
    expect(run.failures).toEqual([{ resourceType: type, id, stage: 'read', reason }]);
    expect(await connector.deadLetters.get(type, id)).toMatchObject({ resourceType: type, id, reason });
    expect(await stack.ahds.read(type, id)).toBeUndefined();

    // The target arrives at the source; a replay of every letter writes it first, then the held-back one.
    await control(stack.openemr, 'PUT', `/${targetType}/${missing}`, copyOf(targetType, missing));
    const replay = await replayDeadLetters(workDepsOf(connector));
    expect(replay.items).toEqual([{ resourceType: type, id, outcome: 'replayed' }]);
    expect(referenceTargets((await stack.ahds.read(type, id)) as any, element, targetType)).toEqual([missing]);
    expect(await stack.ahds.read(targetType, missing)).toBeDefined();
    expect(await connector.deadLetters.get(type, id)).toBeUndefined();

    // The next run meets the target as a new row: written already, so unchanged.
    store.advanceClock(5);
    expect(await runOnce()).toMatchObject({ status: 'ok', failed: 0, created: 0 });
    expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });
  },
);
