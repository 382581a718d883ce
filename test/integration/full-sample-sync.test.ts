/**
 * Issue 16, "done when": a full sync of the whole sample data (data/synthea-dev with the directory
 * of data/openemr-directory linked, nothing trimmed) with the default SYNC_RESOURCE_TYPES ends with
 * target = source for every type, every reference in the target resolving, writes in reference
 * order, and a second full sync creating no new version of anything. The types come from the table
 * (resource-types.ts `carriedByDefault`), so a row that joins the default is covered here with no edit.
 */
import { syncRunHandler } from '../../functions/sync-run';
import { getConnector } from '../../functions/shared/runtime';
import { startStack, type Stack } from '../../stack';
import { defaultDirectoryDir, type SupportedType } from '../../stack/openemr';
import { RESOURCE_TYPES, orderedTypes, specOf } from '../../src/sync/resource-types';
import { completeRun, invoke, useStack } from '../helpers/functions';
import { expectedTarget, mapperFor, targetDiff } from '../helpers/incremental-stack';
import { watchWrites } from '../helpers/reference-watch';

type Json = Record<string, any>;
/** The default types in reference order, as SYNC_RESOURCE_TYPES' default lists them. */
const DEFAULT_TYPES = orderedTypes(RESOURCE_TYPES.filter((t) => t.carriedByDefault).map((t) => t.type)).map((t) => t.type as SupportedType);

let stack: Stack;
const settings = { SYNC_TABLE_PREFIX: 'fullsample', SYNC_LAG_SECONDS: '1' };
const dangling: string[] = [];
const firstSent: string[] = [];
const sent: string[] = [];
let first: Json;

/** Every `reference` value anywhere in a resource. */
function referencesIn(node: unknown): string[] {
  if (Array.isArray(node)) return node.flatMap(referencesIn);
  if (node === null || typeof node !== 'object') return [];
  return Object.entries(node as Json).flatMap(([key, value]) =>
    key === 'reference' && typeof value === 'string' ? [value] : referencesIn(value),
  );
}

/** "Type/version" heads of everything the target holds. */
async function versions(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const type of DEFAULT_TYPES)
    for (const r of await stack.ahds.snapshot(type)) out.set(`${type}/${r.id}`, stack.ahds.versionCount(type, r.id!));
  return out;
}

const fullSync = async (): Promise<Json> => {
  const accepted = await invoke(syncRunHandler, { url: 'sync/run', query: { full: 'true' } });
  const done = await completeRun(stack, accepted);
  expect(done.state).toBe('succeeded');
  return done.result as Json;
};

beforeAll(async () => {
  stack = await startStack({ azurite: true, openemr: { directoryDir: defaultDirectoryDir() } });
  useStack(stack, settings);
  await watchWrites(stack, DEFAULT_TYPES, { dangling, firstSent, sent });
  expect((await getConnector()).config.sync.resourceTypes).toEqual(DEFAULT_TYPES);
  first = await fullSync();
}, 300_000);
afterAll(() => stack?.close());

test('the whole sample is the source: every default type has rows, nothing trimmed', () => {
  for (const type of DEFAULT_TYPES) expect(stack.openemr.store.count(type)).toBeGreaterThan(0);
  // data/synthea-dev as the stand-in loads it (data/README.md): 3,576 Observations, 968 Encounters.
  expect(stack.openemr.store.count('Observation')).toBe(3576);
  expect(stack.openemr.store.count('Encounter')).toBe(968);
});

test('a full sync of the whole sample with every default type ends with target = source, per type', async () => {
  const mapper = mapperFor({ ...stack.env, ...settings });
  const source = DEFAULT_TYPES.reduce((n, type) => n + stack.openemr.store.count(type), 0);
  expect(first).toMatchObject({ status: 'ok', read: source, created: source, updated: 0, failed: 0 });
  for (const type of DEFAULT_TYPES) expect(first.byType[type]).toMatchObject({ created: stack.openemr.store.count(type), failed: 0 });
  for (const type of DEFAULT_TYPES)
    expect({ type, ...(await targetDiff(stack, mapper, [type])) }).toEqual({ type, missing: [], stale: [], extra: [] });
});

test('nothing of the sample is refused: no dead letter, no resource the mapper turns away', async () => {
  const connector = await getConnector();
  expect(first.failures).toEqual([]);
  expect(await connector.deadLetters.list()).toEqual([]);
  expect(expectedTarget(stack, mapperFor({ ...stack.env, ...settings })).unmappable).toEqual([]);
});

test('every reference in every target resource resolves in the target, or points at a row OpenEMR holds of a type not carried', async () => {
  const held = new Set<string>();
  const all: Json[] = [];
  for (const type of DEFAULT_TYPES)
    for (const r of await stack.ahds.snapshot(type)) {
      held.add(`${type}/${r.id}`);
      all.push(r as Json);
    }
  const malformed: string[] = [];
  const unresolved: string[] = [];
  const uncarried = new Map<string, number>();
  let resolved = 0;
  for (const r of all)
    for (const ref of referencesIn(r)) {
      const [, type, id] = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(ref) ?? [];
      if (!type || !id) malformed.push(`${r.resourceType}/${r.id} -> ${ref}`);
      else if (held.has(ref)) resolved++;
      else if (DEFAULT_TYPES.includes(type as SupportedType) || !stack.openemr.store.get(type as SupportedType, id))
        unresolved.push(`${r.resourceType}/${r.id} -> ${ref}`);
      // Kept as MAPPING_UNCARRIED_REFERENCES=keep says: resolves once its type is carried.
      else uncarried.set(type, (uncarried.get(type) ?? 0) + 1);
    }
  expect(malformed).toEqual([]);
  expect(unresolved).toEqual([]);
  expect(resolved).toBeGreaterThan(all.length);
  // Only the directory (linked from data/openemr-directory) is pointed at without being carried.
  const directory = ['Practitioner', 'Organization', 'Location'];
  expect([...uncarried.keys()].filter((t) => !directory.includes(t) || DEFAULT_TYPES.includes(t as SupportedType))).toEqual([]);
});

test('writes are sent in reference order: nothing before what it points at, no type before a lower-ranked one', () => {
  expect(dangling).toEqual([]);
  expect(new Set(firstSent)).toEqual(new Set(DEFAULT_TYPES));
  const ranks = sent.map((type) => specOf(type).rank);
  expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
});

test('a second full sync creates no new version of anything', async () => {
  const before = await versions();
  const created = stack.ahds.stats().versionsCreated;
  const second = await fullSync();
  const source = DEFAULT_TYPES.reduce((n, type) => n + stack.openemr.store.count(type), 0);
  expect(second).toMatchObject({ status: 'ok', read: source, created: 0, updated: 0, unchanged: source, failed: 0 });
  expect(stack.ahds.stats().versionsCreated).toBe(created);
  expect(await versions()).toEqual(before);
  expect([...before.values()].every((v) => v === 1)).toBe(true);
  expect(dangling).toEqual([]);
}, 300_000);
