import { hostname } from 'node:os';
import type { TableClient } from '@azure/data-tables';
import { statusOf } from './storage';

/**
 * A single-runner lease: one table row (partition "lease", row = lease name) naming its owner and
 * expiry. Every change is conditional on the ETag read just before (If-Match), and a new row is an
 * insert that fails if the row exists, so of two runners racing for a free or expired lease exactly
 * one wins. The holder renews it while it runs; a crashed holder blocks others for at most the lease
 * duration (SYNC_LEASE_SECONDS).
 */
export interface LeaseInfo {
  owner: string;
  /** ISO instant after which anyone may take the lease. */
  expiresAt: string;
}

export type AcquireResult = { acquired: true; handle: LeaseHandle } | { acquired: false; holder: LeaseInfo };

export interface LeaseHandle {
  readonly name: string;
  readonly owner: string;
  /** Set once a renewal failed because another runner took the lease (or it expired unrenewed). */
  readonly lost: boolean;
  readonly expiresAt: string;
  /** Extends the lease; false when it was lost. */
  renew(): Promise<boolean>;
  /** Renews now and throws LeaseLostError if the lease is no longer ours (call before closing a window). */
  assertHeld(): Promise<void>;
  /** Renews every third of the lease duration until released. */
  startAutoRenew(): void;
  /** Gives the lease up (only if still ours). */
  release(): Promise<void>;
}

export interface LeaseManager {
  acquire(name: string, owner: string): Promise<AcquireResult>;
  /** Current holder, if any row exists (expired or not). */
  peek(name: string): Promise<LeaseInfo | undefined>;
}

export class LeaseLostError extends Error {
  constructor(name: string) {
    super(`The lease "${name}" was lost to another runner; this run stopped without closing its window.`);
    this.name = 'LeaseLostError';
  }
}

export function describeOwner(runId: string): string {
  return `${runId}@${hostname()}:${process.pid}`;
}

interface LeaseEntity {
  partitionKey: string;
  rowKey: string;
  owner: string;
  expiresAt: string;
  acquiredAt: string;
}

const PARTITION = 'lease';

export class TableLeaseManager implements LeaseManager {
  constructor(
    private readonly table: () => Promise<TableClient>,
    private readonly seconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  async peek(name: string): Promise<LeaseInfo | undefined> {
    const client = await this.table();
    try {
      const e = await client.getEntity<LeaseEntity>(PARTITION, name);
      return { owner: e.owner, expiresAt: e.expiresAt };
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  async acquire(name: string, owner: string): Promise<AcquireResult> {
    const client = await this.table();
    const entity = (): LeaseEntity => ({
      partitionKey: PARTITION,
      rowKey: name,
      owner,
      expiresAt: new Date(this.now() + this.seconds * 1000).toISOString(),
      acquiredAt: new Date(this.now()).toISOString(),
    });
    let current: (LeaseEntity & { etag: string }) | undefined;
    try {
      current = await client.getEntity<LeaseEntity>(PARTITION, name);
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
    }
    if (!current) {
      const fresh = entity();
      try {
        const answer = await client.createEntity(fresh);
        return { acquired: true, handle: this.handle(client, name, owner, answer.etag!, fresh.expiresAt) };
      } catch (error) {
        // 409: another runner inserted the row first.
        if (statusOf(error) === 409) return this.lostRace(name);
        throw error;
      }
    }
    if (current.owner !== owner && Date.parse(current.expiresAt) > this.now()) {
      return { acquired: false, holder: { owner: current.owner, expiresAt: current.expiresAt } };
    }
    const next = entity();
    try {
      const answer = await client.updateEntity(next, 'Replace', { etag: current.etag });
      return { acquired: true, handle: this.handle(client, name, owner, answer.etag!, next.expiresAt) };
    } catch (error) {
      // 412: someone else changed the row between our read and our write; 404: it was released and deleted.
      if (statusOf(error) === 412 || statusOf(error) === 404) return this.lostRace(name);
      throw error;
    }
  }

  /** Another runner won the row: say who holds it (or that it was just released), never retry. */
  private async lostRace(name: string): Promise<AcquireResult> {
    return { acquired: false, holder: (await this.peek(name)) ?? { owner: 'unknown', expiresAt: new Date(this.now()).toISOString() } };
  }

  private handle(client: TableClient, name: string, owner: string, firstEtag: string, firstExpiry: string): LeaseHandle {
    // The handle's own methods have their own `this`: take what they need from the manager here.
    const now = this.now;
    const seconds = this.seconds;
    let etag = firstEtag;
    let expiresAt = firstExpiry;
    let lost = false;
    let timer: NodeJS.Timeout | undefined;
    let released = false;
    let inflight: Promise<boolean> | undefined;
    const write = async (): Promise<boolean> => {
      const next = new Date(now() + seconds * 1000).toISOString();
      const row = { partitionKey: PARTITION, rowKey: name, owner, expiresAt: next, acquiredAt: new Date(now()).toISOString() };
      try {
        etag = (await client.updateEntity<LeaseEntity>(row, 'Replace', { etag })).etag!;
        expiresAt = next;
        return true;
      } catch (error) {
        if (statusOf(error) === 412) {
          // The ETag moved. A renewal of ours that was applied but whose answer got lost (the
          // client retries) moves it too: the lease is lost only if the row names someone else.
          const row = await client.getEntity<LeaseEntity>(PARTITION, name).catch(() => undefined);
          if (row?.owner === owner && Date.parse(row.expiresAt) > now()) {
            etag = row.etag;
            expiresAt = row.expiresAt;
            return true;
          }
          lost = true;
          return false;
        }
        if (statusOf(error) === 404) {
          lost = true;
          return false;
        }
        // Storage hiccup: still ours until expiry; the next renewal tries again.
        if (Date.parse(expiresAt) <= now()) lost = true;
        return !lost;
      }
    };
    // One renewal at a time: the timer and assertHeld() must not race each other on the ETag.
    const renew = (): Promise<boolean> => {
      if (lost || released) return Promise.resolve(!lost && !released);
      inflight ??= write().finally(() => (inflight = undefined));
      return inflight;
    };
    return {
      name,
      owner,
      get lost() {
        return lost;
      },
      get expiresAt() {
        return expiresAt;
      },
      renew,
      async assertHeld() {
        if (!(await renew())) throw new LeaseLostError(name);
      },
      startAutoRenew() {
        if (timer) return;
        timer = setInterval(() => void renew(), Math.max(1000, (seconds * 1000) / 3));
        timer.unref();
      },
      async release() {
        if (timer) clearInterval(timer);
        timer = undefined;
        if (released || lost) return;
        released = true;
        try {
          await client.deleteEntity(PARTITION, name, { etag });
        } catch {
          // Someone else holds it now, or storage is down: the row expires by itself.
        }
      },
    };
  }
}
