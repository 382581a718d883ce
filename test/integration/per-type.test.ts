/**
 * What every carried type must do, parameterised over the table (resource-types.ts): a row added
 * there and carried by default is covered here when it is merged, with no test of its own.
 *
 * - A row back-dated before the window (filed now with an old date column, set through the stand-in's
 *   control API: PUT /_control/<Type>/<id>?lastUpdated=) is invisible to `_lastUpdated`, so the
 *   incremental run cannot see it; reconciliation finds it and the target equals the source again.
 * - A resource whose carried reference OpenEMR cannot resolve is held back and dead-lettered with its
 *   reason; once the target arrives at the source, a replay writes the target and then it.
 * - An edit at the source (through the control API) is carried by the next incremental run as a new
 *   target version holding the change.
 * - A row deleted at the source (OpenEMR keeps no tombstone) is reported by reconciliation, and
 *   removed from the target when RECONCILE_DELETE_MODE=delete. A row something at the source still
 *   points at is not: its deletion is withheld and the referrer dead-lettered saying why, so no
 *   reference in the target dangles. A Patient's resources, read per Patient, go with it.
 */
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../../src/config/load';
import { createConnector, type Connector } from '../../src/connector';
import { MemoryDeadLetterStore } from '../../src/sync/dead-letters';
import { incrementalSync } from '../../src/sync/incremental';
import { runReconcile } from '../../src/sync/reconcile';
import { replayDeadLetters } from '../../src/sync/replay';
import { referenceTargets } from '../../src/sync/sync-service';
import { RESOURCE_TYPES, orderedTypes, specOf } from '../../src/sync/resource-types';
import { workDepsOf } from '../../src/sync/work-queue';
import { startStack, type Stack } from '../../stack';
import type { SupportedType } from '../../stack/openemr';
import { control } from '../helpers/openemr-standin-client';
import { unresolvedReferences } from '../helpers/reference-watch';
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
/**
 * Elements on a reference path that are lists in FHIR R4 (0..*), as `Type.path`, for a copied row
 * that has none there (the sample's Encounters have no participant or location without the directory).
 */
const LIST_ELEMENTS = ['DiagnosticReport.result', 'DocumentReference.context.encounter', 'Encounter.participant', 'Encounter.location'];
const withReference = (resource: Json, element: string, reference: string): Json => {
  const copy = structuredClone(resource);
  const steps = element.split('.');
  const isList = (depth: number) => LIST_ELEMENTS.includes(`${resource.resourceType}.${steps.slice(0, depth + 1).join('.')}`);
  let node: Json = copy;
  for (const [depth, step] of steps.slice(0, -1).entries()) {
    node[step] ??= isList(depth) ? [{}] : {};
    node = Array.isArray(node[step]) ? node[step][0] : node[step];
  }
  const last = steps.at(-1)!;
  node[last] = Array.isArray(node[last]) || isList(steps.length - 1) ? [{ reference }] : { reference };
  return copy;
};

beforeAll(async () => {
  stack = await startStack({ azurite: true });
  trimSource(stack, 60);
  // No overlap: each run reads only what changed since the last (the stand-in's clock moves a few
  // seconds per case, staying near the real one the assertions are signed with).
  settings = incrementalSettings(stack, {
    SYNC_TABLE_PREFIX: 'pertype',
    SYNC_LAG_SECONDS: '0',
    SYNC_OVERLAP_SECONDS: '0',
    RECONCILE_DELETE_MODE: 'delete',
  });
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

/** An edit every type can hold: a business identifier added (identifier is 0..* on each of them). */
const editedIdentifier = (type: string) => ({ system: 'urn:example:per-type-edit', value: `${type}-edit` });

test.each(CARRIED_TYPES)(
  '%s: an edit at the source is carried by the next incremental run as a new target version with the change',
  async (type) => {
    const id = stack.openemr.store.ids(type as SupportedType)[0]!;
    const before = stack.ahds.versionCount(type, id);
    expect(before).toBeGreaterThan(0);
    const row = (await control(stack.openemr, 'GET', `/${type}/${id}`)).body as Json;
    const edited = { ...row, identifier: [...(row.identifier ?? []), editedIdentifier(type)] };
    expect((await control(stack.openemr, 'PUT', `/${type}/${id}`, edited)).status).toBe(200);
    // One second is enough for the window to hold the edit's second (lag and overlap are 0), and the
    // stand-in's clock, moved by every case, must stay within the assertions' five minutes of real time.
    stack.openemr.store.advanceClock(1);

    const run = await runOnce();
    expect(run).toMatchObject({ status: 'ok', created: 0, updated: 1, failed: 0 });
    expect(run.byType[type]).toMatchObject({ updated: 1 });
    expect(stack.ahds.versionCount(type, id)).toBe(before + 1);
    expect(((await stack.ahds.read(type, id)) as Json).identifier).toContainEqual(editedIdentifier(type));
    expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });
  },
);

type Reconciled = Extract<Awaited<ReturnType<typeof runReconcile>>, { skipped: false }>['value'];
const reconciled = async (deleteMode?: 'report-only'): Promise<Reconciled> => {
  const outcome = await runReconcile(connector, { trigger: 'reconcile', ...(deleteMode ? { deleteMode } : {}) });
  if (outcome.skipped) throw new Error('skipped');
  return outcome.value;
};

/**
 * One scenario for every type, so two reconciliations cover them all: per type a fresh row nothing
 * points at, carried; per reference a fresh target with a fresh resource pointing at it, carried. Then
 * both fresh rows and targets are deleted at the source (the referrers stay), and reconciliation runs
 * report-only, then as RECONCILE_DELETE_MODE=delete says.
 */
let deletions: Promise<{
  alone: Record<string, string>;
  pointedAt: string[];
  referrers: string[];
  reported: Reconciled;
  deleted: Reconciled;
  heldAfterReport: string[];
}>;
const deleteAtSource = () =>
  (deletions ??= (async () => {
    const alone: Record<string, string> = {};
    for (const type of CARRIED_TYPES) {
      alone[type] = randomUUID();
      await control(stack.openemr, 'PUT', `/${type}/${alone[type]}`, copyOf(type, alone[type]));
    }
    const pointedAt: string[] = [];
    const referrers: string[] = [];
    for (const [type, element, targetType] of REFERENCES) {
      const targetId = randomUUID();
      const id = randomUUID();
      await control(stack.openemr, 'PUT', `/${targetType}/${targetId}`, copyOf(targetType, targetId));
      await control(
        stack.openemr,
        'PUT',
        `/${type}/${id}`,
        withReference(copyOf(type, id, element, targetType), element, `${targetType}/${targetId}`),
      );
      pointedAt.push(`${targetType}/${targetId}`);
      referrers.push(id);
    }
    stack.openemr.store.advanceClock(1);
    expect(await runOnce()).toMatchObject({ status: 'ok', created: CARRIED_TYPES.length + 2 * REFERENCES.length, failed: 0 });

    for (const type of CARRIED_TYPES) expect((await control(stack.openemr, 'DELETE', `/${type}/${alone[type]}`)).status).toBe(200);
    for (const ref of pointedAt) expect((await control(stack.openemr, 'DELETE', `/${ref}`)).status).toBe(200);
    const reported = await reconciled('report-only');
    const heldAfterReport: string[] = [];
    for (const ref of [...CARRIED_TYPES.map((t) => `${t}/${alone[t]}`), ...pointedAt]) {
      const [type, id] = ref.split('/') as [string, string];
      if (await stack.ahds.read(type, id)) heldAfterReport.push(ref);
    }
    const deleted = await reconciled();
    return { alone, pointedAt, referrers, reported, deleted, heldAfterReport };
  })());

/**
 * Resources of a type read per Patient are served under their Patient: once it is gone OpenEMR serves
 * them no more (deleting a patient in OpenEMR deletes its rows), so they go with it.
 */
const goesWithItsPatient = ([type, , targetType]: (typeof REFERENCES)[number]) =>
  targetType === 'Patient' && specOf(type).read.patientScoped;

test.each(CARRIED_TYPES)(
  '%s: a row deleted at the source is reported by reconciliation and, with RECONCILE_DELETE_MODE=delete, removed from the target',
  async (type) => {
    const { alone, reported, deleted, heldAfterReport } = await deleteAtSource();
    const id = alone[type]!;
    // Gone from the source: the row nothing points at, the targets of the REFERENCES case, and the
    // referrers of that case that went with their Patient; all deleted but the targets still pointed at.
    const referrersGone = REFERENCES.filter((r) => r[0] === type && goesWithItsPatient(r)).length;
    const targetsGone = REFERENCES.filter((r) => r[2] === type && goesWithItsPatient(r)).length;
    const targetsKept = REFERENCES.filter((r) => r[2] === type && !goesWithItsPatient(r)).length;
    const gone = 1 + referrersGone + targetsGone + targetsKept;
    // Report-only: counted, nothing deleted.
    expect(reported.deleteMode).toBe('report-only');
    expect(reported.byType[type]).toMatchObject({ deletedAtSource: gone, deleted: 0 });
    expect(heldAfterReport).toContain(`${type}/${id}`);
    // Delete mode: the row nothing points at is gone from the target (a soft delete: a new version).
    expect(deleted.deleteMode).toBe('delete');
    expect(deleted.byType[type]).toMatchObject({ deletedAtSource: gone, deleted: gone - targetsKept });
    expect(await stack.ahds.read(type, id)).toBeUndefined();
    expect(stack.ahds.versionCount(type, id)).toBe(2);
  },
);

test.each(REFERENCES.filter((r) => !goesWithItsPatient(r)))(
  "%s's %s: its %s deleted at the source while the referrer stays is kept in the target (deletion withheld), the referrer dead-lettered saying why",
  async (type, element, targetType) => {
    const { pointedAt, referrers, deleted } = await deleteAtSource();
    const index = REFERENCES.findIndex((r) => r[0] === type && r[1] === element);
    const [, targetId] = pointedAt[index]!.split('/') as [string, string];
    expect(await stack.ahds.read(targetType, targetId)).toBeDefined();
    expect(stack.ahds.versionCount(type, referrers[index]!)).toBe(1);
    const kept = REFERENCES.filter((r) => r[2] === targetType && !goesWithItsPatient(r)).length;
    expect(deleted.deletesWithheld).toContain(
      `${kept} ${targetType} deletion(s) withheld: resources OpenEMR still holds point at them (dead-lettered).`,
    );
    const letters = await connector.deadLetters.list({ resourceType: type });
    expect(letters.filter((d) => d.reason.includes(targetId)).map((d) => d.reason)).toEqual([
      `Not written because OpenEMR has no ${targetType}/${targetId} (the ${type}'s ${element}).`,
    ]);
  },
);

test.each(REFERENCES.filter(goesWithItsPatient))(
  "%s's %s: its %s deleted at the source takes the referrer (read per Patient) out of the target with it",
  async (type, element) => {
    const { pointedAt, referrers } = await deleteAtSource();
    const index = REFERENCES.findIndex((r) => r[0] === type && r[1] === element);
    const [, patientId] = pointedAt[index]!.split('/') as [string, string];
    expect(await stack.ahds.read('Patient', patientId)).toBeUndefined();
    expect(await stack.ahds.read(type, referrers[index]!)).toBeUndefined();
  },
);

test('after the deletions every reference in the target still resolves', async () => {
  await deleteAtSource();
  expect(await unresolvedReferences(stack, CARRIED_TYPES as SupportedType[])).toEqual([]);
});
