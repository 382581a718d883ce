import type { OpenEmrReader } from '../openemr/reader';
import { lastUpdatedSecond } from '../openemr/patient-pages';
import { floorSecond, iso } from './incremental-windows';
import type { WorkItem } from './work-queue';

export interface PlanOptions {
  /** Lower bound of lastUpdated (default: everything). */
  since?: string;
  /** Upper bound (exclusive) of Patient lastUpdated; the last window is left open past it (see below). */
  until: string;
  /** Most Patients in one work item's window, and the page size its worker reads with (at most 200, OpenEMR's cap). */
  pageSize: number;
  /** Kept for callers; Observations are read per Patient by the Patient items (no windows of their own). */
  windowSeconds?: number;
}

export interface Plan {
  items: WorkItem[];
  /** lastUpdated windows of about `pageSize` Patients each (or one second, however many it holds). */
  patientWindows: number;
  /** Always 0: each Patient item reads its Patients' Observations (OpenEMR cannot bound an Observation window). */
  observationWindows: number;
  /** Requests the planning itself made (it probes, it does not read the data). */
  probes: number;
}

/**
 * Plans a backfill for many workers as Patient lastUpdated windows. From a cursor, one probe asks
 * OpenEMR for the Patient `pageSize` places on (`_lastUpdated=ge<cursor>&_sort=_lastUpdated&_count=1&_offset=N`,
 * each parameter once); its second is where the window ends. Ties have no stable order on OpenEMR,
 * but the second found does not depend on it, and a window that would be empty (a crowded second)
 * becomes that one second. About patients / pageSize probes in all.
 *
 * Each worker reads its window's Patients and every Observation of each (per Patient: OpenEMR cannot
 * bound an Observation window with one parameter). The last window is open at the top, so a Patient
 * edited while the backfill runs is still read by it; what changes after that is the incremental
 * run's, and reconciliation compares the rest.
 */
export async function planBackfill(reader: OpenEmrReader, options: PlanOptions): Promise<Plan> {
  await reader.supportedRelease();
  let probes = 0;
  const items: WorkItem[] = [];
  const until = floorSecond(Date.parse(options.until));
  const pageSize = Math.max(1, Math.min(200, options.pageSize));
  let cursor = options.since ? floorSecond(Date.parse(options.since)) : undefined;
  for (;;) {
    probes++;
    const next = await reader.patientAt({ ...(cursor !== undefined ? { since: iso(cursor) } : {}), offset: pageSize });
    const second = next ? lastUpdatedSecond(next) : undefined;
    const lo = cursor ?? 0;
    if (second === undefined || second >= until) {
      items.push({ kind: 'patients', since: iso(lo), until: OPEN_END });
      break;
    }
    const hi = second > lo ? second : lo + 1000;
    items.push({ kind: 'patients', since: iso(lo), until: iso(hi) });
    cursor = hi;
  }
  return { items, patientWindows: items.length, observationWindows: 0, probes };
}

/** The upper bound of the last window: past any lastUpdated OpenEMR will write. */
export const OPEN_END = '9999-12-31T23:59:59.000Z';
