import { hostname } from 'node:os';
import { odata, type TableClient } from '@azure/data-tables';
import { statusOf } from '../state/storage';
import type { BundleBudget } from './bundle-budget';

interface SlotEntity {
  partitionKey: string;
  rowKey: string;
  owner: string;
  expiresAt: string;
}

const PARTITION = 'bundles';
const UNAVAILABLE_PAUSE_MS = 60_000;

/**
 * The app-wide budget of bundles in flight toward the target, held in Table storage so every process
 * of every instance shares it: `slots` rows, each a lease taken with an insert (409 when another
 * took it) or a conditional replace of an expired one (412 when another did), and deleted when the
 * bundle is answered. A crashed holder frees its slot after `holdMs` (longer than a bundle may take).
 * With no slot free, the caller waits with jittered backoff: the budget slows the app down, never
 * fails it. Nor does a storage outage: the budget is then skipped for a minute (each process keeps its
 * own limit) and `onUnavailable` is told once per outage.
 */
export class TableBundleBudget implements BundleBudget {
  private readonly owner = `${hostname()}:${process.pid}`;
  private unavailableUntil = 0;

  constructor(
    private readonly table: () => Promise<TableClient>,
    readonly slots: number,
    private readonly holdMs: number,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
    private readonly onUnavailable: (message: string) => void = () => undefined,
  ) {}

  async acquire(): Promise<() => void> {
    if (this.now() < this.unavailableUntil) return () => undefined;
    try {
      return await this.take();
    } catch (error) {
      this.unavailableUntil = this.now() + UNAVAILABLE_PAUSE_MS;
      this.onUnavailable(
        `The app-wide bundle budget (Table storage) could not be read (${statusOf(error) ?? (error as Error)?.name ?? 'error'}); each process keeps its own limit for a minute.`,
      );
      return () => undefined;
    }
  }

  private async take(): Promise<() => void> {
    const client = await this.table();
    for (let attempt = 0; ; attempt++) {
      const held = new Set<string>();
      const expired = new Map<string, string>();
      const rows = client.listEntities<SlotEntity>({ queryOptions: { filter: odata`PartitionKey eq ${PARTITION}` } });
      for await (const e of rows) {
        if (Date.parse(e.expiresAt) > this.now()) held.add(e.rowKey);
        else expired.set(e.rowKey, e.etag);
      }
      // Free slots in an order of our own, so processes do not all race for the first one.
      const start = Math.floor(this.random() * this.slots);
      for (let k = 0; k < this.slots; k++) {
        const rowKey = slotKey((start + k) % this.slots);
        if (held.has(rowKey)) continue;
        const slot: SlotEntity = {
          partitionKey: PARTITION,
          rowKey,
          owner: this.owner,
          expiresAt: new Date(this.now() + this.holdMs).toISOString(),
        };
        try {
          const etag = expired.has(rowKey) ? expired.get(rowKey)! : undefined;
          const answer = etag ? await client.updateEntity(slot, 'Replace', { etag }) : await client.createEntity(slot);
          return () => void this.release(client, rowKey, answer.etag);
        } catch (error) {
          const status = statusOf(error);
          if (status !== 409 && status !== 412 && status !== 404) throw error;
        }
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 20 * 2 ** Math.min(attempt, 6)) * (0.5 + this.random())));
    }
  }

  private async release(client: TableClient, rowKey: string, etag: string | undefined): Promise<void> {
    // Only our own lease: if it expired and was taken, the etag no longer matches (412) and it stays.
    await client.deleteEntity(PARTITION, rowKey, { etag }).catch(() => undefined);
  }
}

function slotKey(i: number): string {
  return `slot-${String(i).padStart(4, '0')}`;
}
