import { randomUUID } from 'node:crypto';
import type { AhdsWriter } from '../ahds/writer';
import type { Connector } from '../connector';
import { contentHash } from '../fhir/canonical';
import type { SyncedResource } from '../fhir/types';
import type { OpenEmrReader } from '../openemr/reader';
import type { Telemetry } from '../telemetry/telemetry';
import { endExport, ExportUnavailableError, exportedResources, startExport } from './incremental-export';
import { openEmrNow, requireState, withLease, type LeasedOutcome } from './incremental';
import { forEachObservationWindow, OPENEMR_MAX_COUNT } from './incremental-windows';
import type { RunContext, SyncService, Trigger } from './sync-service';
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
  /** Source resources the mapper refused (dead-lettered). */
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
  byType: Record<'Patient' | 'Observation', TypeReconcile>;
  written: { created: number; updated: number; unchanged: number; failed: number };
  deadLettered: number;
  durationMs: number;
}

export interface ReconcileDeps {
  sync: SyncService;
  reader: OpenEmrReader;
  writer: AhdsWriter;
  telemetry: Telemetry;
  pageSize: number;
  deleteMode: 'report-only' | 'delete';
  /** false reads the source by search instead of $export. */
  useExport?: boolean;
  /** Throws unless this run still holds the sync lease: checked before anything is deleted. */
  assertHeld?: () => Promise<void>;
  serverNow?: () => Promise<number>;
  log?: (message: string) => void;
}

const TYPES = ['Patient', 'Observation'] as const;

/**
 * Compares the Patient and Observation id sets and content hashes of OpenEMR (mapped exactly as a
 * sync maps them) and AHDS (server meta removed), and repairs: writes what is missing or stale;
 * resources gone from OpenEMR (it keeps no tombstones) are reported, or deleted in AHDS when the
 * delete mode says so. This is what finds lab corrections, whose lastUpdated does not move.
 * Memory: one hash per AHDS resource; the source is streamed.
 */
export async function reconcile(deps: ReconcileDeps, options: { trigger: Trigger; runId?: string; onProgress?: (tally: Tally) => void } = { trigger: 'reconcile' }): Promise<ReconcileSummary> {
  const started = Date.now();
  const run = deps.sync.begin('reconcile', options.trigger, options.runId ?? randomUUID(), options.onProgress);
  const byType = Object.fromEntries(TYPES.map((t) => [t, { source: 0, target: 0, inSync: 0, missing: 0, stale: 0, deletedAtSource: 0, deleted: 0, unmappable: 0 }])) as ReconcileSummary['byType'];

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

  // 2. The source, streamed, each resource compared as it comes.
  const sink = deps.sync.sink(run);
  const consider = async (type: (typeof TYPES)[number], resource: SyncedResource) => {
    byType[type].source++;
    run.tally.read++;
    const outcome = deps.sync.mapper.map(resource);
    if (!outcome.ok) {
      byType[type].unmappable++;
      await deps.sync.recordFailures(run, [{ resourceType: type, id: resource.id ?? '', stage: 'map', reason: outcome.reason }]);
      target[type]!.delete(deps.sync.mapper.targetId(type, resource.id ?? ''));
      return;
    }
    run.tally.unmapped.add(outcome.unmapped);
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
  let via: ReconcileSummary['via'] = 'search';
  try {
    let exported = false;
    if (deps.useExport !== false) {
      try {
        const job = await startExport(deps.reader, {});
        via = 'export';
        exported = true;
        try {
          for (const type of TYPES) {
            for (const output of job.outputs.filter((o) => o.type === type)) {
              for await (const r of exportedResources(deps.reader, output.url)) if (r.resourceType === type) await consider(type, r as unknown as SyncedResource);
            }
            await sink.flush();
          }
        } finally {
          await endExport(deps.reader, job);
        }
      } catch (error) {
        if (!(error instanceof ExportUnavailableError)) throw error;
        deps.log?.(`${error.message} Reading the source with searches instead.`);
      }
    }
    if (!exported) {
      for await (const page of deps.reader.patients(deps.pageSize)) for (const p of page) await consider('Patient', p);
      await sink.flush();
      const until = (deps.serverNow ? await deps.serverNow() : Date.now()) + 366 * 86_400_000;
      await forEachObservationWindow(deps.reader, 0, until, { maxPerAnswer: OPENEMR_MAX_COUNT }, async (observations) => {
        for (const o of observations) await consider('Observation', o);
      });
      await sink.flush();
    }
  } catch (error) {
    await sink.flush().catch(() => undefined);
    throw error;
  }

  // 3. What is left in AHDS is gone from OpenEMR. Observations before Patients.
  for (const type of [...TYPES].reverse()) {
    const gone = [...target[type]!.keys()];
    byType[type].deletedAtSource = gone.length;
    if (deps.deleteMode !== 'delete') continue;
    await deps.assertHeld?.();
    // In batch bundles of DELETE entries (soft deletes; FHIR Data Writer suffices), not one by one.
    byType[type].deleted += await deps.writer.deleteAll(type, gone, { runId: run.runId });
  }

  const summary = finishReconcile(deps, run, byType, via, options.trigger, started);
  return summary;
}

function finishReconcile(deps: ReconcileDeps, run: RunContext, byType: ReconcileSummary['byType'], via: ReconcileSummary['via'], trigger: Trigger, started: number): ReconcileSummary {
  const t = run.tally;
  const written = { created: t.total('created'), updated: t.total('updated'), unchanged: t.total('unchanged'), failed: t.total('failed') };
  const summary: ReconcileSummary = {
    runId: run.runId,
    operation: 'reconcile',
    trigger,
    status: written.failed === 0 ? 'ok' : written.created + written.updated + written.unchanged + byType.Patient.inSync + byType.Observation.inSync === 0 ? 'failed' : 'partial',
    deleteMode: deps.deleteMode,
    via,
    byType,
    written,
    deadLettered: t.failureCount,
    durationMs: Date.now() - started,
  };
  const flat: Record<string, number | string> = { runId: summary.runId, trigger, deleteMode: summary.deleteMode, status: summary.status, durationMs: summary.durationMs };
  for (const type of TYPES) for (const [k, v] of Object.entries(byType[type])) flat[`${type}.${k}`] = v;
  for (const [k, v] of Object.entries(written)) flat[`written.${k}`] = v;
  deps.telemetry.reconcileCompleted(flat);
  deps.log?.(reconcileLine(summary));
  return summary;
}

/** One log line of counts (never ids or content). */
export function reconcileLine(s: ReconcileSummary): string {
  const part = (type: 'Patient' | 'Observation') => {
    const c = s.byType[type];
    return `${type} source ${c.source}, target ${c.target}, in sync ${c.inSync}, missing ${c.missing}, stale ${c.stale}, deleted at source ${c.deletedAtSource}${s.deleteMode === 'delete' ? ` (deleted ${c.deleted})` : ' (report-only)'}, unmappable ${c.unmappable}`;
  };
  return `Reconcile ${s.status} via ${s.via}: ${part('Patient')}; ${part('Observation')}; written ${s.written.created} created, ${s.written.updated} updated, ${s.written.failed} failed in ${s.durationMs} ms.`;
}

/** Reconciliation of a connector under the shared sync lease (a second run is skipped, not doubled). */
export async function runReconcile(
  connector: Connector,
  options: { trigger: Trigger; runId?: string; onProgress?: (tally: Tally) => void; deleteMode?: 'report-only' | 'delete'; log?: (message: string) => void },
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
        serverNow: () => openEmrNow(connector.reader),
        log: options.log,
      },
      { trigger: options.trigger, runId, onProgress: options.onProgress },
    );
    return summary;
  });
}
