import { randomUUID } from 'node:crypto';
import type { AhdsWriter } from '../ahds/writer';
import type { AuditCounts } from '../audit/trail';
import type { Connector } from '../connector';
import { contentHash } from '../fhir/canonical';
import type { SyncedResource } from '../fhir/types';
import type { OpenEmrReader } from '../openemr/reader';
import { readSource } from '../openemr/source';
import type { Telemetry } from '../telemetry/telemetry';
import { requireState, withLease, type LeasedOutcome } from './incremental';
import { carriedReferences, specOf } from './resource-types';
import { referenceTargets, type RunContext, type SyncService, type Trigger } from './sync-service';
import type { Tally } from './tally';

export interface TypeReconcile {
  /** Resources in OpenEMR (mappable or not). */
  source: number;
  /** Resources in AHDS before repairs. */
  target: number;
  inSync: number;
  /** In OpenEMR, not in AHDS: written. */
  missing: number;
  /** Different content in AHDS (e.g. a lab corrected without a new lastUpdated): written. */
  stale: number;
  /** In AHDS, no longer in OpenEMR. */
  deletedAtSource: number;
  /** Of those, deleted in AHDS (RECONCILE_DELETE_MODE=delete). */
  deleted: number;
  /** Source resources not written: refused by the mapper, or Observations whose Patient is absent or dead-lettered (all dead-lettered). */
  unmappable: number;
}

export interface ReconcileSummary {
  runId: string;
  operation: 'reconcile';
  trigger: Trigger;
  status: 'ok' | 'partial' | 'failed';
  deleteMode: 'report-only' | 'delete';
  /** How the source was read. */
  via: 'export' | 'search';
  /** Per carried type (SYNC_RESOURCE_TYPES), in reference order. */
  byType: Record<string, TypeReconcile>;
  written: { created: number; updated: number; unchanged: number; failed: number };
  deadLettered: number;
  durationMs: number;
  /** Why resources gone from the source were not deleted although the delete mode says so. */
  deletesWithheld?: string[];
  /** What the audit trail wrote (AUDIT_TRAIL on). */
  audit?: AuditCounts;
}

export interface ReconcileDeps {
  sync: SyncService;
  reader: OpenEmrReader;
  writer: AhdsWriter;
  telemetry: Telemetry;
  pageSize: number;
  deleteMode: 'report-only' | 'delete';
  /**
   * false reads the source by search (every Patient, then each one's Observations), which also
   * returns rows whose date column is NULL: OpenEMR filters every export on `_lastUpdated >= _since`,
   * so those never come out of an export (RECONCILE_SOURCE).
   */
  useExport?: boolean;
  /** Throws unless this run still holds the sync lease: checked before anything is deleted. */
  assertHeld?: () => Promise<void>;
  log?: (message: string) => void;
}

/**
 * Compares the Patient and Observation id sets and content hashes of OpenEMR (mapped exactly as a
 * sync maps them) and AHDS (server meta removed), and repairs: writes what is missing or stale;
 * resources gone from OpenEMR (it keeps no tombstones) are reported, or deleted in AHDS when the
 * delete mode says so. This is what finds lab corrections, whose lastUpdated does not move.
 * Memory: one hash per AHDS resource; the source is streamed.
 */
export async function reconcile(
  deps: ReconcileDeps,
  options: { trigger: Trigger; runId?: string; onProgress?: (tally: Tally) => void } = { trigger: 'reconcile' },
): Promise<ReconcileSummary> {
  const started = Date.now();
  // The release first: one that cannot be read safely is refused before anything is compared.
  const server = await deps.reader.supportedRelease(true);
  const run = deps.sync.begin('reconcile', options.trigger, options.runId ?? randomUUID(), options.onProgress);
  const TYPES = deps.sync.resourceTypes;
  const byType = Object.fromEntries(
    TYPES.map((t) => [t, { source: 0, target: 0, inSync: 0, missing: 0, stale: 0, deletedAtSource: 0, deleted: 0, unmappable: 0 }]),
  ) as ReconcileSummary['byType'];

  // 1. What AHDS holds, read first: anything written after this is never mistaken for a source delete.
  const target: Record<string, Map<string, string>> = {};
  for (const type of TYPES) {
    const hashes = new Map<string, string>();
    for await (const page of deps.writer.search(type, { _count: '1000' })) {
      for (const r of page) if (typeof r.id === 'string') hashes.set(r.id, contentHash(r as never));
    }
    target[type] = hashes;
    byType[type].target = hashes.size;
  }

  // 2. The source, streamed, each resource compared as it comes (export or search: source.ts decides).
  const sink = deps.sync.sink(run);
  // Ids met at the source so far, per type: types come in reference order, so a reference to a
  // carried type is resolved against what was already read.
  const sourceIds = new Map<string, Set<string>>(TYPES.map((t) => [t, new Set<string>()]));
  // Target ids, per type, that resources OpenEMR still holds point at although OpenEMR has them no
  // more: deleting them would leave those resources' references dangling in the target.
  const stillPointedAt = new Map<string, Set<string>>(TYPES.map((t) => [t, new Set<string>()]));
  const blocked = await deps.sync.blockedPatients(run);
  const notWritten = async (type: string, resource: SyncedResource, reason: string, stage: 'map' | 'read') => {
    byType[type]!.unmappable++;
    await deps.sync.recordFailures(run, [{ resourceType: type, id: resource.id ?? '', stage, reason }]);
    target[type]!.delete(deps.sync.mapper.targetId(type, resource.id ?? ''));
  };
  const consider = async (type: string, resource: SyncedResource) => {
    byType[type]!.source++;
    run.tally.read++;
    if (resource.id) sourceIds.get(type)!.add(resource.id);
    // Never write a resource that points at nothing (absent at the source or dead-lettered).
    for (const { id, ...ref } of carriedReferences(type, TYPES).flatMap((r) =>
      referenceTargets(resource, r.element, r.type).map((id) => ({ ...r, id })),
    )) {
      const isBlocked =
        ref.type === 'Patient'
          ? blocked.has(id)
          : run.tally.failedOf(ref.type).has(id) || (await deps.sync.blockedEarlier(run, ref.type)).has(id);
      if (isBlocked) return notWritten(type, resource, `Not written because its ${ref.type}/${id} could not be written.`, 'read');
      if (!sourceIds.get(ref.type)!.has(id)) {
        stillPointedAt.get(ref.type)!.add(deps.sync.mapper.targetId(ref.type, id));
        return notWritten(type, resource, `Not written because OpenEMR has no ${ref.type}/${id} (the ${type}'s ${ref.element}).`, 'read');
      }
    }
    const outcome = deps.sync.mapper.map(resource);
    if (!outcome.ok) return notWritten(type, resource, outcome.reason, 'map');
    run.tally.unmapped.add(outcome.unmapped);
    run.audit?.noteSource(outcome.resource, resource);
    const id = outcome.resource.id ?? '';
    const have = target[type]!.get(id);
    target[type]!.delete(id);
    if (have === contentHash(outcome.resource as never)) {
      byType[type].inSync++;
      return;
    }
    if (have === undefined) byType[type].missing++;
    else byType[type].stale++;
    await sink.add(outcome.resource, resource.id);
  };
  const complete = new Set<string>();
  let read: Awaited<ReturnType<typeof readSource>>;
  try {
    // Everything: no lower bound, and an upper bound no lastUpdated reaches.
    const until = server.now + 366 * 86_400_000;
    read = await readSource(
      deps.reader,
      {
        windows: Object.fromEntries(TYPES.map((t) => [t, { until }])),
        types: TYPES,
        pageSize: deps.pageSize,
        server,
        searchOnly: deps.useExport === false,
      },
      {
        patients: async (page) => {
          for (const p of page) await consider('Patient', p as SyncedResource);
        },
        observations: async (batch) => {
          for (const o of batch) await consider('Observation', o as SyncedResource);
        },
        resources: async (type, batch) => {
          for (const r of batch) await consider(type, r);
        },
        typeDone: async (type) => {
          await sink.flush();
          complete.add(type);
        },
        log: (m) => deps.log?.(m),
      },
    );
  } catch (error) {
    await sink.flush().catch(() => undefined);
    throw error;
  }
  const via: ReconcileSummary['via'] = TYPES.filter((t) => specOf(t).read.connectorExports).every((t) => read.via[t] === 'export')
    ? 'export'
    : 'search';

  // 3. What is left in AHDS is gone from OpenEMR. Observations before Patients. Nothing is deleted on
  //    an answer that may be incomplete: a type not read to its end, or an empty source facing a
  //    non-empty target (an empty first page of a non-empty table, 7.0.2's empty paged searches).
  //    Nor what a resource OpenEMR still holds points at (an Encounter deleted while a Condition of
  //    it stays): that resource stays in the target, so its reference would dangle there; it is
  //    dead-lettered saying why, and once it changes or goes the next reconciliation deletes.
  const withheld: string[] = [];
  for (const type of [...TYPES].reverse()) {
    const pointedAt = stillPointedAt.get(type)!;
    const all = [...target[type]!.keys()];
    const gone = all.filter((id) => !pointedAt.has(id));
    const counts = byType[type]!;
    counts.deletedAtSource = all.length;
    if (deps.deleteMode !== 'delete' || all.length === 0) continue;
    if (gone.length < all.length)
      withheld.push(
        `${all.length - gone.length} ${type} deletion(s) withheld: resources OpenEMR still holds point at them (dead-lettered).`,
      );
    if (gone.length === 0) continue;
    const doubt = !complete.has(type)
      ? `${type} was not read to its end`
      : counts.source === 0
        ? `OpenEMR answered no ${type} at all while AHDS holds ${counts.target}`
        : type !== 'Patient' && byType.Patient!.source === 0
          ? 'OpenEMR answered no Patient at all'
          : undefined;
    if (doubt) {
      withheld.push(`${gone.length} ${type} deletion(s) withheld: ${doubt}.`);
      continue;
    }
    await deps.assertHeld?.();
    // In batch bundles of DELETE entries (soft deletes; FHIR Data Writer suffices), not one by one.
    counts.deleted += await deps.writer.deleteAll(type, gone, { runId: run.runId });
    // The run's AuditEvent records deletes too (action D), by target reference.
    run.audit?.noteDeleted(type, gone);
  }

  const summary = finishReconcile(deps, run, byType, via, options.trigger, started, withheld);
  const audit = await deps.sync.closeAudit(run, summary.status);
  return audit ? { ...summary, audit } : summary;
}

function finishReconcile(
  deps: ReconcileDeps,
  run: RunContext,
  byType: ReconcileSummary['byType'],
  via: ReconcileSummary['via'],
  trigger: Trigger,
  started: number,
  withheld: string[],
): ReconcileSummary {
  const t = run.tally;
  const written = { created: t.total('created'), updated: t.total('updated'), unchanged: t.total('unchanged'), failed: t.total('failed') };
  const summary: ReconcileSummary = {
    runId: run.runId,
    operation: 'reconcile',
    trigger,
    status:
      written.failed === 0
        ? 'ok'
        : written.created + written.updated + written.unchanged + Object.values(byType).reduce((n, c) => n + c.inSync, 0) === 0
          ? 'failed'
          : 'partial',
    deleteMode: deps.deleteMode,
    via,
    byType,
    written,
    deadLettered: t.failureCount,
    durationMs: Date.now() - started,
    ...(withheld.length > 0 ? { deletesWithheld: withheld } : {}),
  };
  const flat: Record<string, number | string> = {
    runId: summary.runId,
    trigger,
    deleteMode: summary.deleteMode,
    status: summary.status,
    durationMs: summary.durationMs,
  };
  for (const [type, counts] of Object.entries(byType)) for (const [k, v] of Object.entries(counts)) flat[`${type}.${k}`] = v;
  for (const [k, v] of Object.entries(written)) flat[`written.${k}`] = v;
  deps.telemetry.reconcileCompleted(flat);
  deps.log?.(reconcileLine(summary));
  return summary;
}

/** One log line of counts (never ids or content). */
export function reconcileLine(s: ReconcileSummary): string {
  const part = (type: string) => {
    const c = s.byType[type]!;
    return `${type} source ${c.source}, target ${c.target}, in sync ${c.inSync}, missing ${c.missing}, stale ${c.stale}, deleted at source ${c.deletedAtSource}${s.deleteMode === 'delete' ? ` (deleted ${c.deleted})` : ' (report-only)'}, unmappable ${c.unmappable}`;
  };
  return `Reconcile ${s.status} via ${s.via}: ${Object.keys(s.byType).map(part).join('; ')}; written ${s.written.created} created, ${s.written.updated} updated, ${s.written.failed} failed in ${s.durationMs} ms.${s.deletesWithheld ? ` ${s.deletesWithheld.join(' ')}` : ''}`;
}

/** Reconciliation of a connector under the shared sync lease (a second run is skipped, not doubled). */
export async function runReconcile(
  connector: Connector,
  options: {
    trigger: Trigger;
    runId?: string;
    onProgress?: (tally: Tally) => void;
    deleteMode?: 'report-only' | 'delete';
    log?: (message: string) => void;
  },
): Promise<LeasedOutcome<ReconcileSummary>> {
  const state = requireState(connector);
  const runId = options.runId ?? randomUUID();
  return withLease(state.lease, runId, async (handle) => {
    const summary = await reconcile(
      {
        assertHeld: () => handle.assertHeld(),
        sync: connector.sync,
        reader: connector.reader,
        writer: connector.writer,
        telemetry: connector.telemetry,
        pageSize: connector.config.openemr.pageSize,
        deleteMode: options.deleteMode ?? connector.config.sync.reconcileDeleteMode,
        useExport: connector.config.openemrRead.reconcileSource === 'export',
        log: options.log,
      },
      { trigger: options.trigger, runId, onProgress: options.onProgress },
    );
    return summary;
  });
}
