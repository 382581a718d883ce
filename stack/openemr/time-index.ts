/**
 * Records kept sorted by (lastUpdated, row): a _lastUpdated window is two binary searches and a
 * slice, and `_sort=_lastUpdated` comes out as MySQL gives it (equal seconds in row order, no id
 * tie-break). Bulk loads append
 * unsorted and sort once on the next query, so loading 1M records is one sort, not 1M splices.
 */
export interface TimeKeyed {
  id: string;
  lastUpdated: number;
  /** Row number: insertion order, kept across updates (as a table's primary key). */
  seq: number;
}

export function compareTimeKeyed(a: TimeKeyed, b: TimeKeyed): number {
  if (a.lastUpdated !== b.lastUpdated) return a.lastUpdated - b.lastUpdated;
  return a.seq - b.seq;
}

export class TimeIndex<T extends TimeKeyed> {
  private items: T[] = [];
  private sorted = true;

  get size(): number {
    return this.items.length;
  }

  /** Appends without keeping order (bulk import); the next read sorts once. */
  addUnsorted(item: T): void {
    this.items.push(item);
    this.sorted = false;
  }

  add(item: T): void {
    const last = this.items[this.items.length - 1];
    if (!this.sorted || last === undefined || compareTimeKeyed(last, item) <= 0) {
      // New writes carry "now", so they nearly always belong at the end.
      this.items.push(item);
      return;
    }
    this.items.splice(this.lowerBound(item), 0, item);
  }

  remove(item: TimeKeyed): boolean {
    this.ensureSorted();
    const at = this.lowerBound(item);
    const found = this.items[at];
    if (found && found.id === item.id && found.lastUpdated === item.lastUpdated) {
      this.items.splice(at, 1);
      return true;
    }
    return false;
  }

  /** Swaps a record for a new version with the same key (a content change that keeps lastUpdated). */
  replace(item: T): boolean {
    this.ensureSorted();
    const at = this.lowerBound(item);
    const found = this.items[at];
    if (found && found.id === item.id && found.lastUpdated === item.lastUpdated) {
      this.items[at] = item;
      return true;
    }
    return false;
  }

  /** Records with lo <= lastUpdated < hi, ascending. */
  range(lo: number, hi: number): T[] {
    this.ensureSorted();
    const start = lo === -Infinity ? 0 : this.firstAtOrAfter(lo);
    const end = hi === Infinity ? this.items.length : this.firstAtOrAfter(hi);
    return end > start ? this.items.slice(start, end) : [];
  }

  /** How many records a window holds, without copying them (used to pick the cheapest index). */
  rangeSize(lo: number, hi: number): number {
    this.ensureSorted();
    const start = lo === -Infinity ? 0 : this.firstAtOrAfter(lo);
    const end = hi === Infinity ? this.items.length : this.firstAtOrAfter(hi);
    return Math.max(0, end - start);
  }

  /** Sorts now rather than on the next query (after a bulk load, so the first search is not slow). */
  ensureSorted(): void {
    if (!this.sorted) {
      this.items.sort(compareTimeKeyed);
      this.sorted = true;
    }
  }

  private firstAtOrAfter(seconds: number): number {
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.items[mid].lastUpdated < seconds) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private lowerBound(key: TimeKeyed): number {
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareTimeKeyed(this.items[mid], key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
