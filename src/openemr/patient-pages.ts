import type { Patient } from '../fhir/types';
import type { OpenEmrReader } from './reader';

export const iso = (ms: number): string => new Date(ms).toISOString();

/** Epoch milliseconds of a resource's meta.lastUpdated (offset-aware), floored to the second. */
export function lastUpdatedSecond(resource: { meta?: { lastUpdated?: string } }): number | undefined {
  const ms = Date.parse(resource.meta?.lastUpdated ?? '');
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000) * 1000;
}

/**
 * Patients with lastUpdated in [sinceMs, untilMs), in pages. Keyset paging: each page starts at the
 * lastUpdated of the previous page's last Patient (ids already seen at that second are skipped), so
 * a Patient that changes during the run and moves out of the window cannot shift a later Patient
 * past an _offset boundary. A second holding more Patients than a page is paged by _offset.
 */
export async function* patientsInWindow(reader: Pick<OpenEmrReader, 'patientPage'>, pageSize: number, sinceMs: number | undefined, untilMs: number | undefined): AsyncGenerator<Patient[]> {
  let cursor = sinceMs;
  let seen = new Set<string>();
  const window = (lo: number | undefined, hi: number | undefined) => ({ ...(lo !== undefined ? { since: iso(lo) } : {}), ...(hi !== undefined ? { until: iso(hi) } : {}) });
  for (;;) {
    const page = await reader.patientPage({ offset: 0, count: pageSize, window: window(cursor, untilMs) });
    const fresh = page.filter((p) => !seen.has(p.id ?? ''));
    if (fresh.length > 0) yield fresh;
    if (page.length < pageSize) return;
    const last = lastUpdatedSecond(page[page.length - 1]!);
    if (last === undefined) {
      // No usable lastUpdated: finish by plain _offset paging from here.
      for (let offset = pageSize; ; offset += pageSize) {
        const more = await reader.patientPage({ offset, count: pageSize, window: window(cursor, untilMs) });
        if (more.length > 0) yield more;
        if (more.length < pageSize) return;
      }
    }
    if (cursor === undefined || last > cursor) {
      cursor = last;
      seen = new Set(page.filter((p) => lastUpdatedSecond(p) === last).map((p) => p.id ?? ''));
      continue;
    }
    // A whole page within one second: page through that second by _offset, then move past it.
    const secondEnd = untilMs === undefined ? cursor + 1000 : Math.min(cursor + 1000, untilMs);
    for (let offset = pageSize; ; offset += pageSize) {
      const more = await reader.patientPage({ offset, count: pageSize, window: window(cursor, secondEnd) });
      const unseen = more.filter((p) => !seen.has(p.id ?? ''));
      if (unseen.length > 0) yield unseen;
      if (more.length < pageSize) break;
    }
    cursor = secondEnd;
    seen = new Set();
    if (untilMs !== undefined && cursor >= untilMs) return;
  }
}
