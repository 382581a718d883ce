import type { Connector } from '../connector';
import { failureClassOf } from '../state/errors';
import type { WatermarkStore } from '../state/watermarks';
import { METRICS } from '../telemetry/names';
import type { Telemetry } from '../telemetry/telemetry';
import type { Trigger } from './sync-service';

/**
 * What the telemetry says about runs that did not finish, and about freshness whatever the run did.
 * A run that completes reports itself (SyncService.finish); one that fails or is skipped would
 * otherwise leave no trace, and the lag alert, fed only by finished runs, could never fire in an
 * outage. Lag here is measured from the stored watermarks (the last closed window), on the
 * connector's clock, so it keeps growing while every run fails.
 */
export interface UnfinishedRun {
  runId: string;
  trigger: Trigger;
  operation: string;
  status: 'failed' | 'skipped';
  /** The error of a failed run (classified, never quoted). */
  error?: unknown;
  startedAt: number;
}

/** Where freshness is read from: the watermarks of the carried types (SYNC_RESOURCE_TYPES). */
export interface FreshnessSource {
  telemetry: Telemetry;
  watermarks?: WatermarkStore;
  /** The carried types: a type no longer carried keeps its old watermark but is no longer reported. */
  types: readonly string[];
}

/** The connector's freshness source: its telemetry, its watermarks (when it keeps state) and its carried types. */
export function freshnessSourceOf(connector: Connector): FreshnessSource {
  return { telemetry: connector.telemetry, watermarks: connector.state?.watermarks, types: connector.config.sync.resourceTypes };
}

/** Seconds since each carried type's watermark; types without one are left out. */
export async function freshnessByType(
  watermarks: WatermarkStore,
  types: readonly string[],
  now: number = Date.now(),
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const type of types) {
    const mark = await watermarks.get(type);
    if (mark) out[type] = Math.max(0, (now - Date.parse(mark.until)) / 1000);
  }
  return out;
}

/**
 * Emits the freshness gauge per type and answers the lag (the stalest type), or undefined when no
 * watermark can be read (none yet, or storage down).
 */
export async function reportFreshness(
  { telemetry, watermarks, types }: FreshnessSource,
  now: number = Date.now(),
): Promise<number | undefined> {
  if (!watermarks) return undefined;
  let byType: Record<string, number>;
  try {
    byType = await freshnessByType(watermarks, types, now);
  } catch {
    return undefined;
  }
  for (const [resourceType, seconds] of Object.entries(byType)) telemetry.gauge(METRICS.freshnessSeconds, seconds, { resourceType });
  const values = Object.values(byType);
  return values.length > 0 ? Math.max(...values) : undefined;
}

/** The run event of a failed or skipped run, with status, failure class and the lag from the watermarks. */
export async function reportUnfinishedRun(deps: FreshnessSource, run: UnfinishedRun, now: number = Date.now()): Promise<void> {
  const lagSeconds = await reportFreshness(deps, now);
  deps.telemetry.runCompleted({
    runId: run.runId,
    trigger: run.trigger,
    operation: run.operation,
    status: run.status,
    ...(run.status === 'failed' ? { failureClass: failureClassOf(run.error) } : {}),
    read: 0,
    created: 0,
    updated: 0,
    unchanged: 0,
    failed: 0,
    deadLettered: 0,
    durationMs: Math.max(0, now - run.startedAt),
    ...(lagSeconds !== undefined ? { lagSeconds } : {}),
  });
}
