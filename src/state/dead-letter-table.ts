import type { TableClient } from '@azure/data-tables';
import { MemoryDeadLetterStore, type DeadLetter, type DeadLetterStore } from '../sync/dead-letters';
import { fromSafeKey, safeKey, statusOf } from './storage';

const MAX_REASON = 1000;

/** A dead letter as a table row: type and id become the keys, the rest is stored as it is. */
type DeadLetterEntity = Omit<DeadLetter, 'resourceType' | 'id'> & { partitionKey: string; rowKey: string };

/**
 * Dead letters in an Azure table (`${SYNC_TABLE_PREFIX}deadletters`): partition = resource type,
 * row = source id, one row per resource (a new failure replaces the old row). The row holds
 * identifiers, stage, status, reason, attempts and time: never resource content.
 */
export class TableDeadLetterStore implements DeadLetterStore {
  constructor(private readonly table: () => Promise<TableClient>) {}

  async record(items: DeadLetter[]): Promise<void> {
    if (items.length === 0) return;
    const client = await this.table();
    // Upserts one at a time but several at once: a batch would need one partition per call.
    const queue = [...items];
    const worker = async () => {
      for (let item = queue.shift(); item; item = queue.shift()) await client.upsertEntity(toEntity(item), 'Replace');
    };
    await Promise.all(Array.from({ length: Math.min(8, queue.length) }, worker));
  }

  async list(options: { resourceType?: string; limit?: number } = {}): Promise<DeadLetter[]> {
    const client = await this.table();
    const filter = options.resourceType ? `PartitionKey eq '${options.resourceType.replace(/'/g, "''")}'` : undefined;
    const out: DeadLetter[] = [];
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    if (limit <= 0) return out;
    for await (const e of client.listEntities<DeadLetterEntity>(filter ? { queryOptions: { filter } } : {})) {
      out.push(fromEntity(e));
      if (out.length >= limit) break;
    }
    return out;
  }

  async remove(keys: Array<{ resourceType: string; id: string }>): Promise<void> {
    const client = await this.table();
    for (const k of keys) {
      try {
        await client.deleteEntity(k.resourceType, safeKey(k.id));
      } catch (error) {
        if (statusOf(error) !== 404) throw error;
      }
    }
  }
}

function toEntity({ resourceType, id, status, reason, ...rest }: DeadLetter): DeadLetterEntity {
  return { partitionKey: resourceType, rowKey: safeKey(id), ...rest, ...(status !== undefined ? { status } : {}), reason: reason.slice(0, MAX_REASON) };
}

function fromEntity(e: DeadLetterEntity): DeadLetter {
  return {
    resourceType: e.partitionKey,
    id: fromSafeKey(e.rowKey),
    stage: e.stage,
    ...(typeof e.status === 'number' ? { status: e.status } : {}),
    reason: e.reason,
    attempts: e.attempts,
    at: e.at,
    runId: e.runId,
    operation: e.operation,
  };
}

/**
 * Wraps the table store so that storage trouble never turns a single-item sync into a 500: what
 * cannot be stored is kept in memory and counted. Runs that close windows compare `unpersisted`
 * before and after and keep their watermark when it grew, so nothing is lost silently.
 */
export class GuardedDeadLetterStore implements DeadLetterStore {
  unpersisted = 0;
  private readonly fallback = new MemoryDeadLetterStore();

  constructor(
    readonly inner: DeadLetterStore,
    private readonly warn: (message: string) => void = (m) => console.warn(m),
  ) {}

  async record(items: DeadLetter[]): Promise<void> {
    try {
      await this.inner.record(items);
    } catch (error) {
      this.unpersisted += items.length;
      await this.fallback.record(items);
      this.warn(`Dead-letter storage failed (${(error as Error)?.name ?? 'Error'}); ${items.length} dead letter(s) kept in memory only.`);
    }
  }

  async list(options?: { resourceType?: string; limit?: number }): Promise<DeadLetter[]> {
    return this.inner.list(options);
  }

  async remove(keys: Array<{ resourceType: string; id: string }>): Promise<void> {
    await this.fallback.remove(keys);
    await this.inner.remove(keys);
  }
}
