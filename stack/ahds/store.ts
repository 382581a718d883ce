/**
 * Versioned resource store of the AHDS stand-in.
 *
 * Resource bodies (every version) live in Medplum's MemoryRepository. Next to it this store keeps, per
 * resource, a head record with the AHDS-style integer version, lastUpdated, a soft-delete flag and the
 * content hash used for no-op detection, and per resource type an append-only write log ordered by
 * lastUpdated, so `_lastUpdated` ranges, `_sort=_lastUpdated` and continuation tokens stay cheap with
 * a million resources.
 *
 * All mutations happen synchronously (MemoryRepository.createResource does its work before its first
 * await), so a transaction can apply all its entries without another request interleaving.
 */
import { MemoryRepository } from '@medplum/fhir-router';
import type { Resource } from '@medplum/fhirtypes';

export interface Head {
  /** Latest version number (a delete is a version too). */
  version: number;
  lastUpdated: string;
  ms: number;
  deleted: boolean;
  /** Content hash of the current (non-deleted) version. */
  hash: string;
  /** Position in the type's write log. */
  seq: number;
  /** Version numbers that are deletes. */
  deletedVersions?: number[];
}

interface LogItem {
  id: string;
  seq: number;
  ms: number;
}

class TypeIndex {
  readonly heads = new Map<string, Head>();
  log: LogItem[] = [];
  live = 0;
}

export interface WriteResult {
  created: boolean;
  /** True when the PUT matched the stored content: no new version. */
  noop: boolean;
  head: Head;
  /** The stored resource (resolves after the synchronous mutation is done). */
  resource: Promise<Resource>;
}

export interface ScanOptions {
  /** Inclusive lower / exclusive upper bound on lastUpdated (ms). */
  fromMs?: number;
  toMs?: number;
  descending?: boolean;
  /** Continue after this sequence number (from a continuation token). */
  afterSeq?: number;
}

export class VersionedStore {
  readonly repo = new MemoryRepository();
  private readonly types = new Map<string, TypeIndex>();
  private seq = 0;
  private lastMs = 0;

  private index(type: string): TypeIndex {
    let t = this.types.get(type);
    if (!t) {
      t = new TypeIndex();
      this.types.set(type, t);
    }
    return t;
  }

  /** Non-decreasing clock: lastUpdated never goes backwards, so the write log stays sorted by it. */
  private now(): number {
    const ms = Math.max(Date.now(), this.lastMs);
    this.lastMs = ms;
    return ms;
  }

  head(type: string, id: string): Head | undefined {
    return this.types.get(type)?.heads.get(id);
  }

  resourceTypes(): string[] {
    return [...this.types.keys()].sort();
  }

  ids(type: string): string[] {
    const t = this.types.get(type);
    if (!t) return [];
    return [...t.heads.entries()].filter(([, h]) => !h.deleted).map(([id]) => id);
  }

  liveCount(type: string): number {
    return this.types.get(type)?.live ?? 0;
  }

  /**
   * Upsert. `resource` must already be validated and carry the URL's id. No new version when the
   * content hash equals the current version's (and the resource is not deleted).
   */
  upsert(type: string, id: string, resource: Resource, hash: string): WriteResult {
    const t = this.index(type);
    const prev = t.heads.get(id);
    if (prev && !prev.deleted && prev.hash === hash) {
      return { created: false, noop: true, head: prev, resource: this.repo.readResource(type, id) };
    }
    const ms = this.now();
    const head: Head = {
      version: (prev?.version ?? 0) + 1,
      lastUpdated: new Date(ms).toISOString(),
      ms,
      deleted: false,
      hash,
      seq: ++this.seq,
      ...(prev?.deletedVersions ? { deletedVersions: prev.deletedVersions } : {}),
    };
    const toStore = {
      ...resource,
      id,
      meta: { ...(resource.meta ?? {}), versionId: String(head.version), lastUpdated: head.lastUpdated },
    } as Resource;
    // createResource keeps the versionId and lastUpdated it is given and records the version in its history.
    const stored = this.repo.createResource(toStore);
    t.heads.set(id, head);
    if (!prev || prev.deleted) t.live++;
    t.log.push({ id, seq: head.seq, ms });
    this.maybeCompact(t);
    // Created only when the new version is the first (SqlServerFhirDataStore): reviving a
    // soft-deleted resource continues its versions and is an update (200).
    return { created: !prev, noop: false, head, resource: stored };
  }

  /** Soft delete: a new (deleted) version. Returns undefined when there was nothing to delete. */
  softDelete(type: string, id: string): Head | undefined {
    const t = this.types.get(type);
    const prev = t?.heads.get(id);
    if (!t || !prev || prev.deleted) return undefined;
    const ms = this.now();
    const head: Head = {
      version: prev.version + 1,
      lastUpdated: new Date(ms).toISOString(),
      ms,
      deleted: true,
      hash: '',
      seq: ++this.seq,
      deletedVersions: [...(prev.deletedVersions ?? []), prev.version + 1],
    };
    t.heads.set(id, head);
    t.live--;
    this.maybeCompact(t);
    return head;
  }

  /** Current version, or undefined when missing or deleted. */
  async read(type: string, id: string): Promise<Resource | undefined> {
    const h = this.head(type, id);
    if (!h || h.deleted) return undefined;
    return this.repo.readResource(type, id);
  }

  async readVersion(type: string, id: string, version: number): Promise<Resource | 'deleted' | undefined> {
    const h = this.head(type, id);
    if (!h || version < 1 || version > h.version) return undefined;
    if (h.deletedVersions?.includes(version)) return 'deleted';
    try {
      return await this.repo.readVersion(type, id, String(version));
    } catch {
      return undefined;
    }
  }

  /** Live resources of a type in lastUpdated order (then write order), lazily. */
  *scan(type: string, opts: ScanOptions = {}): Generator<{ id: string; head: Head }> {
    const t = this.types.get(type);
    if (!t) return;
    const log = t.log;
    // First index with ms >= fromMs, first index with ms >= toMs.
    let lo = opts.fromMs === undefined ? 0 : lowerBound(log, (x) => x.ms < opts.fromMs!);
    let hi = opts.toMs === undefined ? log.length : lowerBound(log, (x) => x.ms < opts.toMs!);
    if (opts.afterSeq !== undefined) {
      const at = lowerBound(log, (x) => x.seq <= opts.afterSeq!); // first seq > afterSeq
      if (opts.descending)
        hi = Math.min(
          hi,
          lowerBound(log, (x) => x.seq < opts.afterSeq!),
        );
      else lo = Math.max(lo, at);
    }
    if (opts.descending) {
      for (let i = hi - 1; i >= lo; i--) {
        const item = log[i];
        const head = t.heads.get(item.id);
        if (head && head.seq === item.seq && !head.deleted) yield { id: item.id, head };
      }
    } else {
      for (let i = lo; i < hi; i++) {
        const item = log[i];
        const head = t.heads.get(item.id);
        if (head && head.seq === item.seq && !head.deleted) yield { id: item.id, head };
      }
    }
  }

  /** Drops superseded log items once they outnumber live ones (sequence numbers are kept). */
  private maybeCompact(t: TypeIndex): void {
    if (t.log.length < 4096 || t.log.length < 2 * t.live + 1024) return;
    t.log = t.log.filter((item) => {
      const head = t.heads.get(item.id);
      return head !== undefined && head.seq === item.seq && !head.deleted;
    });
  }
}

/** First index i in [0, arr.length] for which before(arr[i]) is false (before must be monotone). */
function lowerBound<T>(arr: T[], before: (x: T) => boolean): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (before(arr[mid])) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
