import type { OpenEmrReader } from '../openemr/reader';
import { windowParams } from '../openemr/reader';
import { floorSecond, iso } from './incremental-windows';
import type { WorkItem } from './work-queue';

export interface PlanOptions {
  /** Lower bound of lastUpdated (default: everything). */
  since?: string;
  /** Upper bound (exclusive) of lastUpdated; keep it behind now so pages do not move while they are worked. */
  until: string;
  /** Patients per page item (at most 200, OpenEMR's cap). */
  pageSize: number;
  /** Longest Observation window of one item (default 30 days); empty windows are left out. */
  windowSeconds?: number;
}

export interface Plan {
  items: WorkItem[];
  patients: number;
  patientPages: number;
  observationWindows: number;
  /** Requests the planning itself made (it probes, it does not read the data). */
  probes: number;
}

/**
 * Plans a backfill for many workers: Patient pages sized by counting the Patients in the window
 * with one-entry probes (exponential then binary search over _offset: O(log n) requests), and
 * Observation windows found by halving the time range, dropping halves a `_count=1` probe shows to
 * be empty, until each window is at most `windowSeconds` long. The queue consumer splits a window
 * further when its answer is large, so a dense window costs requests, never memory.
 */
export async function planBackfill(reader: OpenEmrReader, options: PlanOptions): Promise<Plan> {
  let probes = 0;
  const window = { ...(options.since ? { since: options.since } : {}), until: options.until };
  const exists = async (offset: number): Promise<boolean> => {
    probes++;
    return (await reader.patientPage({ offset, count: 1, window })).length > 0;
  };
  // Patients: the smallest offset with nothing there is the count.
  let hi = options.pageSize;
  let lo = 0;
  if (!(await exists(0))) hi = 0;
  else {
    while (await exists(hi)) {
      lo = hi;
      hi *= 2;
    }
    // exists(lo) (or lo = 0 known to exist), !exists(hi)
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (await exists(mid)) lo = mid;
      else hi = mid;
    }
  }
  const patients = hi;
  const items: WorkItem[] = [];
  for (let offset = 0; offset < patients; offset += options.pageSize) items.push({ kind: 'patients', offset, count: options.pageSize, ...window });
  const patientPages = items.length;

  // Observations: non-empty windows of at most windowSeconds.
  const maxSpan = (options.windowSeconds ?? 30 * 86400) * 1000;
  const nonEmpty = async (a: number, b: number): Promise<boolean> => {
    probes++;
    return (await reader.search('Observation', { ...windowParams({ since: iso(a), until: iso(b) }), _count: '1' })).length > 0;
  };
  const walk = async (a: number, b: number): Promise<void> => {
    if (b <= a || !(await nonEmpty(a, b))) return;
    if (b - a <= maxSpan || b - a <= 1000) {
      items.push({ kind: 'observations', since: iso(a), until: iso(b) });
      return;
    }
    const mid = a + floorSecond((b - a) / 2);
    await walk(a, mid);
    await walk(mid, b);
  };
  await walk(options.since ? floorSecond(Date.parse(options.since)) : 0, floorSecond(Date.parse(options.until)));
  return { items, patients, patientPages, observationWindows: items.length - patientPages, probes };
}
