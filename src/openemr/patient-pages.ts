import type { Patient } from '../fhir/types';
import { UpstreamError } from '../http/errors';
import type { OpenEmrReader } from './reader';

export const iso = (ms: number): string => new Date(ms).toISOString();

/** Epoch milliseconds of a resource's meta.lastUpdated (offset-aware), floored to the second. */
export function lastUpdatedSecond(resource: { meta?: { lastUpdated?: string } }): number | undefined {
  const ms = Date.parse(resource.meta?.lastUpdated ?? '');
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000) * 1000;
}

/**
 * Patients with lastUpdated in [sinceMs, untilMs), in pages, asking OpenEMR only what it can answer:
 * `_lastUpdated=ge<cursor>&_sort=_lastUpdated&_count=N` (one value per key; the upper bound is
 * applied here, stopping at the first Patient at or past it).
 *
 * OpenEMR's sort has no tie-break, so the order inside one second may change between requests. A
 * page therefore hands out only the Patients before the second of its last entry; the next page
 * starts at that second (ge), where all of that second's Patients come first. A page that lies
 * wholly inside one second (a crowded second: the 7.0.3 upgrade stamps every legacy row with one)
 * is read whole with `_lastUpdated=eq<second>`, then the cursor moves past it. Nothing is skipped
 * or handed out twice by the paging itself; a Patient edited during the run moves later and is
 * read again there.
 */
export async function* patientsInWindow(
  reader: Pick<OpenEmrReader, 'patientPage' | 'patientsInSecond'>,
  pageSize: number,
  sinceMs: number | undefined,
  untilMs: number | undefined,
): AsyncGenerator<Patient[]> {
  const count = Math.max(2, Math.min(200, pageSize));
  const before = (p: Patient) => untilMs === undefined || (lastUpdatedSecond(p) ?? -Infinity) < untilMs;
  let cursor = sinceMs === undefined ? undefined : Math.floor(sinceMs / 1000) * 1000;
  for (;;) {
    if (cursor !== undefined && untilMs !== undefined && cursor >= untilMs) return;
    const page = await reader.patientPage({ ...(cursor !== undefined ? { since: iso(cursor) } : {}), count });
    const seconds = page.map(lastUpdatedSecond);
    if (seconds.some((s) => s === undefined)) {
      throw new UpstreamError(
        'openemr',
        'InvalidResponse',
        'OpenEMR answered a sorted Patient page with a Patient that has no meta.lastUpdated, so the page cannot be continued.',
      );
    }
    // Out of window at the lower end cannot happen on OpenEMR (ge); guard against a server that ignores it.
    const inWindow = page.filter((_, i) => cursor === undefined || seconds[i]! >= cursor);
    const stop = inWindow.findIndex((p) => !before(p));
    if (page.length < count || stop >= 0) {
      const rest = stop >= 0 ? inWindow.slice(0, stop) : inWindow;
      if (rest.length > 0) yield rest;
      return;
    }
    const last = seconds[seconds.length - 1]!;
    const first = seconds[0]!;
    if (first < last) {
      yield inWindow.filter((p) => lastUpdatedSecond(p)! < last);
      cursor = last;
      continue;
    }
    // A whole page in one second: that second, whole, then on past it.
    const crowded = (await reader.patientsInSecond(iso(last))).filter((p) => lastUpdatedSecond(p) === last);
    const kept = crowded.filter(before);
    if (kept.length > 0) yield kept;
    cursor = last + 1000;
  }
}
