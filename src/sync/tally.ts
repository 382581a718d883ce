import type { WriteResult } from '../ahds/writer';
import { UnmappedCodeReport } from '../mapping/report';

export interface TypeCounts {
  created: number;
  updated: number;
  unchanged: number;
  failed: number;
}

export interface FailureItem {
  resourceType: string;
  id: string;
  stage: 'read' | 'map' | 'write';
  status?: number;
  reason: string;
}

/** Failures kept as examples per run: enough to act on, bounded however large the run. */
const KEPT_FAILURES = 1000;

/** Running counts of one sync run; the shape every summary, event and CLI line is built from. */
export class Tally {
  read = 0;
  /** Resources deleted in the target because the source reported them deleted (export deleted[]). */
  deleted = 0;
  readonly byType: Record<string, TypeCounts> = {};
  /** The first failures of the run (at most KEPT_FAILURES); failureCount has them all. */
  readonly failures: FailureItem[] = [];
  failureCount = 0;
  /** Patients that failed in this run: their Observations must wait. */
  readonly failedPatients = new Set<string>();
  /** Ids that failed in this run, per type (what points at them must wait). */
  private readonly failedIds = new Map<string, Set<string>>();
  /** Codings no map covered, counted. */
  readonly unmapped = new UnmappedCodeReport();

  addWrites(results: readonly WriteResult[]): void {
    for (const r of results) {
      const counts = (this.byType[r.resourceType] ??= { created: 0, updated: 0, unchanged: 0, failed: 0 });
      counts[r.outcome]++;
      if (r.outcome === 'failed')
        this.keep({ resourceType: r.resourceType, id: r.id, stage: 'write', status: r.status, reason: r.reason ?? 'write failed' });
    }
  }

  addFailure(item: FailureItem): void {
    (this.byType[item.resourceType] ??= { created: 0, updated: 0, unchanged: 0, failed: 0 }).failed++;
    this.keep(item);
  }

  private keep(item: FailureItem): void {
    this.failureCount++;
    if (item.resourceType === 'Patient') this.failedPatients.add(item.id);
    this.failedOf(item.resourceType).add(item.id);
    if (this.failures.length < KEPT_FAILURES) this.failures.push(item);
  }

  /** Ids of a type that failed in this run. */
  failedOf(type: string): Set<string> {
    let set = this.failedIds.get(type);
    if (!set) this.failedIds.set(type, (set = new Set()));
    return set;
  }

  total(outcome: keyof TypeCounts): number {
    return Object.values(this.byType).reduce((sum, c) => sum + c[outcome], 0);
  }
}
