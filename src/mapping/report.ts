import type { UnmappedCoding } from './contract';

export interface UnmappedCodeEntry {
  system: string;
  code: string;
  display?: string;
  count: number;
}

/**
 * Counts codings the maps could not translate to a standard code, for run summaries, telemetry
 * and the report endpoint. Entries come out most frequent first, then by system and code; the
 * display is the first one seen for that system and code.
 */
export class UnmappedCodeReport {
  private readonly counts = new Map<string, UnmappedCodeEntry>();

  add(codes: UnmappedCoding[]): void {
    for (const c of codes) this.addOne(c.system, c.code, c.display, 1);
  }

  merge(other: UnmappedCodeReport): void {
    for (const e of other.counts.values()) this.addOne(e.system, e.code, e.display, e.count);
  }

  entries(): UnmappedCodeEntry[] {
    return [...this.counts.values()]
      .map((e) => ({ ...e }))
      .sort((a, b) => b.count - a.count || cmp(a.system, b.system) || cmp(a.code, b.code));
  }

  /** Distinct codes counted. */
  get size(): number {
    return this.counts.size;
  }

  /** Occurrences counted, all codes together. */
  total(): number {
    let n = 0;
    for (const e of this.counts.values()) n += e.count;
    return n;
  }

  private addOne(system: string, code: string, display: string | undefined, count: number): void {
    const key = `${system}\u0000${code}`;
    const entry = this.counts.get(key);
    if (entry) {
      entry.count += count;
      if (entry.display === undefined && display !== undefined) entry.display = display;
    } else {
      this.counts.set(key, display === undefined ? { system, code, count } : { system, code, display, count });
    }
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
