import type { Observation } from '../fhir/types';
import type { OpenEmrReader } from '../openemr/reader';
import { windowParams } from '../openemr/reader';

/**
 * Reading a lastUpdated window from OpenEMR so that it finishes on OpenEMR's semantics: no next
 * links, Observation not pageable at all (Patient pages: src/openemr/patient-pages.ts), one-second
 * precision, timestamps in the server's local offset (compared here as instants, never as text).
 */

export function floorSecond(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

import { iso } from '../openemr/patient-pages';

export { iso };

/** OpenEMR caps _count at 200 (per Observation sub-service). */
export const OPENEMR_MAX_COUNT = 200;

export interface ObservationWindowOptions {
  /**
   * An answer of at least this many Observations (capped at OPENEMR_MAX_COUNT) makes the window
   * split in halves. It is sent as _count, which OpenEMR applies per sub-service, so an answer can
   * only have been cut short when it reached it: memory stays bounded and nothing is dropped.
   */
  maxPerAnswer: number;
  /** Called after each window is handed out: the share of [since, until) covered so far. */
  onCovered?: (fraction: number) => void;
}

/**
 * Observations with lastUpdated in [sinceMs, untilMs), one bounded answer at a time. OpenEMR cannot
 * page Observations, so a window whose answer reaches `maxPerAnswer` (asked with `_count`, which
 * OpenEMR applies per sub-service; were it ignored the answer is simply large) is split in halves,
 * recursively, down to one second, below which OpenEMR cannot tell times apart and the whole
 * second is read at once.
 */
export async function forEachObservationWindow(
  reader: OpenEmrReader,
  sinceMs: number,
  untilMs: number,
  options: ObservationWindowOptions,
  visit: (observations: Observation[], window: { since: number; until: number }) => Promise<void>,
): Promise<{ requests: number; windows: number }> {
  const span = Math.max(1, untilMs - sinceMs);
  let covered = 0;
  let requests = 0;
  let windows = 0;
  const cap = Math.max(1, Math.min(options.maxPerAnswer, OPENEMR_MAX_COUNT));
  const walk = async (lo: number, hi: number): Promise<void> => {
    if (hi <= lo) return;
    const params = { ...windowParams({ since: iso(lo), until: iso(hi) }), _count: String(cap) };
    let answer = (await reader.search('Observation', params)) as Observation[];
    requests++;
    if (answer.length >= cap) {
      if (hi - lo > 1000) {
        const mid = lo + floorSecond((hi - lo) / 2);
        answer = [];
        await walk(lo, mid);
        await walk(mid, hi);
        return;
      }
      // One second cannot be split: read all of it.
      answer = await reader.observationsInWindow({ since: iso(lo), until: iso(hi) });
      requests++;
    }
    windows++;
    await visit(answer, { since: lo, until: hi });
    covered += hi - lo;
    options.onCovered?.(Math.min(1, covered / span));
  };
  await walk(floorSecond(sinceMs), floorSecond(untilMs));
  return { requests, windows };
}
