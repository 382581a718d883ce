/**
 * What each OpenEMR release can answer, from its PHP code (see the README's compatibility matrix).
 * The reader reads `/metadata` software.version once per run and reads only the way that release
 * allows; below what can be served safely it refuses with one sentence naming the version and why.
 */
export interface OpenEmrRelease {
  /** software.version as the server reported it ("unknown" when it reported none). */
  version: string;
  /** Patient honours `_count`/`_sort` (7.0.3+; 7.0.2.x empties any search that carries one). */
  patientPaging: boolean;
  /** Observation honours `_lastUpdated` (7.0.2.2+). */
  observationLastUpdated: boolean;
  /** `$export?_since` works (7.0.2.2+; before, a 500). */
  exportSince: boolean;
  /** Set when the connector will not sync from this release: the sentence that says why. */
  refusal?: string;
}

/** The oldest release the connector syncs from. */
export const MIN_SUPPORTED = [7, 0, 3] as const;

function parts(version: string): number[] | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)(?:\.(\d+))?/.exec(version.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4] ?? 0)] : undefined;
}

function atLeast(v: number[], min: readonly number[]): boolean {
  for (let i = 0; i < min.length; i++) {
    const a = v[i] ?? 0;
    const b = min[i] ?? 0;
    if (a !== b) return a > b;
  }
  return true;
}

/**
 * 7.0.2.x is refused rather than read around: every search carrying `_count`, `_offset` or `_sort`
 * answers 200 with an empty bundle (openemr#8127/#8128, fixed in 7.0.3), so paging cannot be told
 * apart from "no data", and an empty answer there once made reconcile delete a whole target. A
 * version the connector cannot read (a fork, a blank) is taken as current: newer releases only added
 * what the reader needs.
 */
export function releaseOf(version: string | undefined): OpenEmrRelease {
  const v = version ? parts(version) : undefined;
  const shown = version?.trim() || 'unknown';
  if (!v || atLeast(v, MIN_SUPPORTED)) return { version: shown, patientPaging: true, observationLastUpdated: true, exportSince: true };
  const v7022 = atLeast(v, [7, 0, 2, 2]);
  return {
    version: shown,
    patientPaging: false,
    observationLastUpdated: v7022,
    exportSince: v7022,
    refusal:
      `OpenEMR ${shown} is not supported: it answers every paged or sorted FHIR search with an empty result` +
      `${v7022 ? '' : ' and cannot filter Observations or exports by _lastUpdated'}, so the connector could not tell "no changes" from "no data"; upgrade OpenEMR to 7.0.3 or later.`,
  };
}
