import { randomUUID } from 'node:crypto';
import type { Connector } from '../connector';
import type { SyncedResource } from '../fhir/types';
import type { OpenEmrReader } from '../openemr/reader';
import type { StateStores } from '../state';
import { DeadLetterStorageError } from '../state/errors';
import { describeOwner, LeaseLostError, type LeaseHandle, type LeaseInfo, type LeaseManager } from '../state/lease';
import { addRunCounts } from '../state/unmapped-codes';
import type { WatermarkStore } from '../state/watermarks';
import { METRICS } from '../telemetry/names';
import type { Telemetry } from '../telemetry/telemetry';
import type { DeadLetterStore } from './dead-letters';
import { readSource } from '../openemr/source';
import { floorSecond, iso } from './incremental-windows';
import { specOf } from './resource-types';
import type { SyncService, SyncSummary, Trigger } from './sync-service';
import type { Tally } from './tally';

/** The one lease shared by timer, HTTP and CLI runs (incremental and reconciliation). */
export const SYNC_LEASE = 'sync';

export interface IncrementalSettings {
  lagSeconds: number;
  overlapSeconds: number;
  initialSince: string;
  pageSize: number;
}

export interface IncrementalOptions {
  /** Gaps longer than this are read with $export?_since= instead of searches (default OPENEMR_EXPORT_GAP_SECONDS). */
  exportGapSeconds?: number;
  /** false: never use $export (default: OPENEMR_EXPORT). */
  useExport?: boolean;
}

export interface RunProgress {
  tally: Tally;
  phase: string;
  /** Share of the work done, when it can be told (windowed reads: share of the window covered). */
  fraction?: number;
  startedAt: number;
}

export interface RunRequest {
  trigger: Trigger;
  /** Start every type's window here instead of at its watermark (watermarks still advance). */
  since?: string;
  /** Everything, whatever the watermarks (bulk export where offered). */
  full?: boolean;
  runId?: string;
  onProgress?: (progress: RunProgress) => void;
}

export interface TypeWindow {
  since?: string;
  until: string;
  via: 'search' | 'export';
  /** True once the watermark of the type moved to `until`. */
  closed: boolean;
}

export interface IncrementalSummary extends SyncSummary {
  windows: Record<string, TypeWindow>;
}

export type Skipped = { status: 'skipped'; message: string; holder: LeaseInfo };

export type LeasedOutcome<T> = { skipped: true; skip: Skipped } | { skipped: false; value: T };

/** Dead letters are counted up to this many for the pending gauge (the table is read to count them). */
const PENDING_COUNT_LIMIT = 10_000;

/** Runs fn while holding the shared lease; answers "skipped" when another run holds it. */
export async function withLease<T>(lease: LeaseManager, runId: string, fn: (handle: LeaseHandle) => Promise<T>): Promise<LeasedOutcome<T>> {
  const got = await lease.acquire(SYNC_LEASE, describeOwner(runId));
  if (!got.acquired) {
    return {
      skipped: true,
      skip: { status: 'skipped', holder: got.holder, message: `skipped: another run holds the lease until ${got.holder.expiresAt}` },
    };
  }
  got.handle.startAutoRenew();
  try {
    return { skipped: false, value: await fn(got.handle) };
  } finally {
    await got.handle.release();
  }
}

/**
 * OpenEMR's "now", as an instant (one GET /metadata): the HTTP Date header, since OpenEMR's
 * CapabilityStatement date is date-only (a full instant from another server is taken when it agrees
 * within a day). Windows are cut against the server's clock, not ours, so skew cannot open a gap.
 */
export async function openEmrNow(reader: OpenEmrReader): Promise<number> {
  return (await reader.serverInfo(true)).now;
}

interface Deps {
  sync: SyncService;
  reader: OpenEmrReader;
  watermarks: WatermarkStore;
  lease: LeaseManager;
  telemetry: Telemetry;
  deadLetters: DeadLetterStore;
  unmapped?: StateStores['unmapped'];
  settings: IncrementalSettings;
  options?: IncrementalOptions;
  /** Defaults to openEmrNow (one GET /metadata). */
  serverNow?: () => Promise<number>;
  log?: (message: string) => void;
}

/**
 * The incremental run. Per resource type a window [previous upper bound - overlap, OpenEMR now -
 * lag) is read and written; its watermark moves to the upper bound only after every resource in it
 * is written or dead-lettered (and the lease is still ours). An outage throws and leaves the
 * watermark where it was, so the next run reads the window again; overlap duplicates are written
 * again and come back "unchanged" (deterministic output, AHDS keeps the version).
 */
export class IncrementalSync {
  constructor(private readonly deps: Deps) {}

  async run(request: RunRequest): Promise<LeasedOutcome<IncrementalSummary>> {
    const runId = request.runId ?? randomUUID();
    return withLease(this.deps.lease, runId, (handle) => this.execute(request, runId, handle));
  }

  /** The run itself, for a caller that already holds the lease. */
  async execute(request: RunRequest, runId: string, handle: LeaseHandle): Promise<IncrementalSummary> {
    const { sync, reader, watermarks, settings } = this.deps;
    const options = this.deps.options ?? {};
    const startedAt = Date.now();
    let phase = 'starting';
    const progress = (tally: Tally) => request.onProgress?.({ tally, phase, startedAt });
    const run = sync.begin('incrementalSync', request.trigger, runId, progress);

    // The release first: a release that cannot be read safely is refused before anything moves.
    const server = await reader.supportedRelease(true);
    // OpenEMR's clock, not ours: the window and the lag it leaves are both measured on it.
    const serverNow = this.deps.serverNow ? await this.deps.serverNow() : server.now;
    const serverNowAt = Date.now();
    const upper = floorSecond(serverNow - settings.lagSeconds * 1000);
    const types = sync.resourceTypes;
    const lower: Record<string, number | undefined> = {};
    for (const type of types) {
      if (request.full) lower[type] = undefined;
      else {
        // A window from the epoch (or before), asked for or SYNC_INITIAL_SINCE's default, reads a type
        // whose column holds pre-1970 clinical dates whole: `_lastUpdated=ge1970` would skip those rows.
        const fromEpoch = (since: number) => (since <= 0 && specOf(type).read.preEpochDates ? undefined : since);
        const mark = request.since ? undefined : await watermarks.get(type);
        lower[type] = request.since
          ? fromEpoch(Date.parse(request.since))
          : mark
            ? Date.parse(mark.until) - settings.overlapSeconds * 1000
            : fromEpoch(Date.parse(settings.initialSince));
      }
    }
    const lows = types.map((t) => lower[t]);
    const lowest = lows.some((l) => l === undefined) ? undefined : Math.min(...(lows as number[]));
    const windowOf = (type: string) => ({ ...(lower[type] !== undefined ? { since: lower[type] } : {}), until: upper });

    const windows: Record<string, TypeWindow> = {};
    for (const type of types) {
      const lo = lower[type];
      windows[type] = { ...(lo !== undefined ? { since: iso(lo) } : {}), until: iso(upper), via: 'search', closed: false };
    }
    const close = async (type: string, via: 'search' | 'export') => {
      const lost = this.deps.deadLetters.unpersistedFor?.(runId) ?? 0;
      if (lost > 0) throw new DeadLetterStorageError(lost);
      await handle.assertHeld();
      await watermarks.advance({ resourceType: type, until: iso(upper), runId, via, updatedAt: new Date().toISOString() });
      windows[type] = { ...(lower[type] !== undefined ? { since: iso(lower[type]!) } : {}), until: iso(upper), via, closed: true };
    };
    const sink = sync.sink(run);
    let blocked: Set<string> | undefined;
    const blockedNow = async () => (blocked ??= await sync.blockedPatients(run));
    const take = async (type: string, batch: readonly SyncedResource[]) => {
      this.checkLease(handle);
      phase = type;
      await sync.takeBatch(run, sink, batch, await blockedNow());
      run.onProgress?.(run.tally);
    };
    try {
      phase = 'reading';
      await readSource(
        reader,
        {
          windows: Object.fromEntries(types.map((t) => [t, windowOf(t)])),
          types,
          pageSize: settings.pageSize,
          server,
          searchOnly: options.useExport === false,
          ...(options.exportGapSeconds !== undefined ? { exportGapSeconds: options.exportGapSeconds } : {}),
        },
        {
          patients: async (page) => {
            this.checkLease(handle);
            phase = 'Patient';
            run.tally.read += page.length;
            await sync.writeResources(page, run);
            // Patients that failed here block what points at them: the set is taken again after
            // them (the directory, read before any Patient, took it while it was still empty).
            blocked = undefined;
            run.onProgress?.(run.tally);
          },
          observations: (batch) => take('Observation', batch),
          resources: take,
          present: (ids) => sync.notePresent(run, ids),
          deleted: async (type, id) => {
            this.checkLease(handle);
            await sync.deleteFromTarget(run, type, id);
          },
          typeDone: async (type, via) => {
            await sink.flush();
            if (lower[type] === undefined || lower[type]! < upper) await close(type, via);
          },
          log: (message) => this.deps.log?.(message),
        },
      );
    } catch (error) {
      // Let bundles in flight finish before the lease goes, so no write outlives the run.
      await sink.flush().catch(() => undefined);
      // What was written before the failure is on record too.
      await sync.closeAudit(run, 'failed');
      throw error;
    } finally {
      await addRunCounts(this.deps.unmapped, run.tally.unmapped, this.deps.log);
    }
    const lagSeconds = Math.max(0, (serverNow + (Date.now() - serverNowAt) - upper) / 1000);
    const deletedNote =
      run.tally.deleted > 0 ? `${run.tally.deleted} resource(s) deleted in the target: the export listed them in deleted[].` : undefined;
    const summary = (await sync.finish(
      run,
      deletedNote,
      { ...(lowest !== undefined ? { since: iso(lowest) } : {}), until: iso(upper) },
      lagSeconds,
    )) as IncrementalSummary;
    summary.windows = windows;
    await this.reportPendingDeadLetters();
    return summary;
  }

  /** The dead letters waiting for replay, as a gauge for the workbook and the growing-dead-letters alert. */
  private async reportPendingDeadLetters(): Promise<void> {
    try {
      const pending = await this.deps.deadLetters.list({ limit: PENDING_COUNT_LIMIT });
      this.deps.telemetry.gauge(METRICS.deadLettersPending, pending.length);
    } catch {
      // Storage trouble is reported by the run itself; a missing gauge point is no failure.
    }
  }

  private checkLease(handle: LeaseHandle): void {
    if (handle.lost) throw new LeaseLostError(handle.name);
  }
}

/** The incremental run of a connector; it needs the state stores (storage settings). */
export function incrementalSync(connector: Connector, options: IncrementalOptions = {}, log?: (message: string) => void): IncrementalSync {
  const state = requireState(connector);
  return new IncrementalSync({
    sync: connector.sync,
    reader: connector.reader,
    watermarks: state.watermarks,
    lease: state.lease,
    telemetry: connector.telemetry,
    deadLetters: connector.deadLetters,
    unmapped: state.unmapped,
    settings: {
      lagSeconds: connector.config.sync.lagSeconds,
      overlapSeconds: connector.config.sync.overlapSeconds,
      initialSince: connector.config.sync.initialSince,
      pageSize: connector.config.openemr.pageSize,
    },
    options,
    log,
  });
}

export function requireState(connector: Connector): StateStores {
  if (!connector.state)
    throw new Error('Incremental sync needs Azure Storage: set AzureWebJobsStorage or AzureWebJobsStorage__accountName.');
  return connector.state;
}

/** One log line of a run's counts (never content). */
export function runLine(s: SyncSummary & { windows?: Record<string, TypeWindow> }): string {
  const windows = s.windows
    ? Object.entries(s.windows)
        .map(([t, w]) => `${t} [${w.since ?? 'start'}, ${w.until}) via ${w.via}${w.closed ? '' : ' (not closed)'}`)
        .join('; ')
    : '';
  return `${s.operation} ${s.status}: read ${s.read}, created ${s.created}, updated ${s.updated}, unchanged ${s.unchanged}, failed ${s.failed}, dead-lettered ${s.deadLettered} in ${s.durationMs} ms${windows ? `; ${windows}` : ''}.`;
}
