import type { OpenEmrReader } from '../openemr/reader';
import { windowParams } from '../openemr/reader';
import { floorSecond, iso } from './incremental-windows';
import type { WorkItem } from './work-queue';

export interface PlanOptions {
  /** Lower bound of lastUpdated (default: everything). */
  since?: string;
  /** Upper bound (exclusive) of lastUpdated; keep it behind now so pages do not move while they are worked. */
  until: string;
  /** Most Patients in one work item's window, and the page size its worker reads with (at most 200, OpenEMR's cap). */
  pageSize: number;
  /** Longest Observation window of one item (default 30 days); empty windows are left out. */
  windowSeconds?: number;
}

export interface Plan {
  items: WorkItem[];
  /** lastUpdated windows of at most `pageSize` Patients each (or one second, however many it holds). */
  patientWindows: number;
  observationWindows: number;
  /** Requests the planning itself made (it probes, it does not read the data). */
  probes: number;
}

/**
 * Plans a backfill for many workers as lastUpdated windows, found by halving the time range and
 * dropping halves a one-entry probe shows to be empty: Patient windows until each holds at most
 * `pageSize` Patients (a probe at _offset=pageSize says whether it holds more), Observation windows
 * until each is at most `windowSeconds` long. Workers read a Patient window with keyset pages and an
 * Observation window by splitting it further when its answer is large, so a Patient edited during
 * the backfill cannot push another out of its item (it moves past `until`, where the incremental
 * run finds it), and a dense window costs requests, never memory.
 */
export async function planBackfill(reader: OpenEmrReader, options: PlanOptions): Promise<Plan> {
  let probes = 0;
  const items: WorkItem[] = [];
  const from = options.since ? floorSecond(Date.parse(options.since)) : 0;
  const to = floorSecond(Date.parse(options.until));

  // Patients: windows of at most pageSize Patients.
  const patientAt = async (a: number, b: number, offset: number): Promise<boolean> => {
    probes++;
    return (await reader.patientPage({ offset, count: 1, window: { since: iso(a), until: iso(b) } })).length > 0;
  };
  await splitWindows(
    from,
    to,
    async (a, b) => (!(await patientAt(a, b, 0)) ? 'empty' : b - a <= 1000 || !(await patientAt(a, b, options.pageSize)) ? 'take' : 'split'),
    (a, b) => items.push({ kind: 'patients', since: iso(a), until: iso(b) }),
  );
  const patientWindows = items.length;

  // Observations: non-empty windows of at most windowSeconds.
  const maxSpan = (options.windowSeconds ?? 30 * 86400) * 1000;
  const nonEmpty = async (a: number, b: number): Promise<boolean> => {
    probes++;
    return (await reader.search('Observation', { ...windowParams({ since: iso(a), until: iso(b) }), _count: '1' })).length > 0;
  };
  await splitWindows(
    from,
    to,
    async (a, b) => (!(await nonEmpty(a, b)) ? 'empty' : b - a <= maxSpan ? 'take' : 'split'),
    (a, b) => items.push({ kind: 'observations', since: iso(a), until: iso(b) }),
  );
  return { items, patientWindows, observationWindows: items.length - patientWindows, probes };
}

/**
 * Halves [a, b) (ms, whole seconds) until `decide` stops asking for a split, in time order; a window
 * of one second is taken whatever `decide` says, since lastUpdated has no finer grain.
 */
async function splitWindows(
  a: number,
  b: number,
  decide: (a: number, b: number) => Promise<'empty' | 'take' | 'split'>,
  take: (a: number, b: number) => void,
): Promise<void> {
  if (b <= a) return;
  const verdict = await decide(a, b);
  if (verdict === 'empty') return;
  if (verdict === 'take' || b - a <= 1000) return take(a, b);
  const mid = a + floorSecond((b - a) / 2);
  await splitWindows(a, mid, decide, take);
  await splitWindows(mid, b, decide, take);
}
