import type { TableClient, TransactionAction } from '@azure/data-tables';
import { byResourceType, keyString } from '../fhir/types';
import { MemoryDeadLetterStore, type DeadLetter, type DeadLetterStore } from '../sync/dead-letters';
import { fromSafeKey, safeKey, statusOf } from './storage';

const MAX_REASON = 1000;
/** Azure Tables: at most 100 operations in one entity-group transaction. */
const TRANSACTION_ROWS = 100;

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
    // A row at most once per transaction: the later failure of a resource replaces the earlier one.
    const latest = new Map(items.map((item) => [keyString(item), item]));
    await inTransactions(client, [...latest.values()], (item) => ['upsert', toEntity(item), 'Replace'] as const);
  }

  async list(options: { resourceType?: string; limit?: number } = {}): Promise<DeadLetter[]> {
    const client = await this.table();
    const filter = options.resourceType ? partitionFilter(options.resourceType) : undefined;
    const out: DeadLetter[] = [];
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    if (limit <= 0) return out;
    for await (const e of client.listEntities<DeadLetterEntity>(filter ? { queryOptions: { filter } } : {})) {
      out.push(fromEntity(e));
      if (out.length >= limit) break;
    }
    return out;
  }

  async ids(resourceType: string, limit: number): Promise<string[]> {
    const client = await this.table();
    const out: string[] = [];
    if (limit <= 0) return out;
    const queryOptions = { filter: partitionFilter(resourceType), select: ['RowKey'] };
    for await (const e of client.listEntities<{ rowKey: string }>({ queryOptions })) {
      out.push(fromSafeKey(e.rowKey));
      if (out.length >= limit) break;
    }
    return out;
  }

  async get(resourceType: string, id: string): Promise<DeadLetter | undefined> {
    const client = await this.table();
    try {
      return fromEntity(await client.getEntity<DeadLetterEntity>(resourceType, safeKey(id)));
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  async remove(keys: Array<{ resourceType: string; id: string }>): Promise<void> {
    if (keys.length === 0) return;
    const client = await this.table();
    const unique = [...new Map(keys.map((k) => [keyString(k), k])).values()];
    try {
      await inTransactions(client, unique, (k) => ['delete', { partitionKey: k.resourceType, rowKey: safeKey(k.id) }] as const);
    } catch (error) {
      // A transaction fails whole when one of its rows is already gone (404): delete those one by one.
      if (statusOf(error) !== 404) throw error;
      for (const k of unique) {
        try {
          await client.deleteEntity(k.resourceType, safeKey(k.id));
        } catch (e) {
          if (statusOf(e) !== 404) throw e;
        }
      }
    }
  }
}

/**
 * Entity-group transactions: one partition (resource type) and at most 100 rows each, four at a
 * time. A Patient that fails takes its Observations with it: one request for a hundred dead
 * letters, not a hundred; a bundle's recovered letters go the same way.
 */
async function inTransactions<T extends { resourceType: string }>(
  client: TableClient,
  items: readonly T[],
  action: (item: T) => TransactionAction,
): Promise<void> {
  const transactions = [...byResourceType(items).values()].flatMap((list) =>
    Array.from({ length: Math.ceil(list.length / TRANSACTION_ROWS) }, (_, i) =>
      list.slice(i * TRANSACTION_ROWS, (i + 1) * TRANSACTION_ROWS),
    ),
  );
  const worker = async () => {
    for (let next = transactions.shift(); next; next = transactions.shift()) await client.submitTransaction(next.map(action));
  };
  await Promise.all(Array.from({ length: Math.min(4, transactions.length) }, worker));
}

function partitionFilter(resourceType: string): string {
  return `PartitionKey eq '${resourceType.replace(/'/g, "''")}'`;
}

function toEntity({ resourceType, id, status, reason, ...rest }: DeadLetter): DeadLetterEntity {
  return {
    partitionKey: resourceType,
    rowKey: safeKey(id),
    ...rest,
    ...(status !== undefined ? { status } : {}),
    reason: reason.slice(0, MAX_REASON),
  };
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
 * cannot be stored is kept in memory and counted per run. A run that closes windows asks for its
 * own count before it moves a watermark and keeps the watermark when any were lost, so nothing is
 * lost silently, and another operation's trouble in the same process does not hold its window.
 */
const RUNS_REMEMBERED = 1000;

export class GuardedDeadLetterStore implements DeadLetterStore {
  /** Lost dead letters per run id; the oldest runs are forgotten beyond RUNS_REMEMBERED. */
  private readonly lostByRun = new Map<string, number>();
  private readonly fallback = new MemoryDeadLetterStore();

  constructor(
    readonly inner: DeadLetterStore,
    private readonly warn: (message: string) => void = (m) => console.warn(m),
  ) {}

  async record(items: DeadLetter[]): Promise<void> {
    try {
      await this.inner.record(items);
    } catch (error) {
      for (const item of items) this.lostByRun.set(item.runId, (this.lostByRun.get(item.runId) ?? 0) + 1);
      while (this.lostByRun.size > RUNS_REMEMBERED) this.lostByRun.delete(this.lostByRun.keys().next().value!);
      await this.fallback.record(items);
      this.warn(`Dead-letter storage failed (${(error as Error)?.name ?? 'Error'}); ${items.length} dead letter(s) kept in memory only.`);
    }
  }

  unpersistedFor(runId: string): number {
    return this.lostByRun.get(runId) ?? 0;
  }

  async list(options?: { resourceType?: string; limit?: number }): Promise<DeadLetter[]> {
    return this.inner.list(options);
  }

  async get(resourceType: string, id: string): Promise<DeadLetter | undefined> {
    return this.inner.get(resourceType, id);
  }

  async ids(resourceType: string, limit: number): Promise<string[]> {
    return this.inner.ids(resourceType, limit);
  }

  async remove(keys: Array<{ resourceType: string; id: string }>): Promise<void> {
    await this.fallback.remove(keys);
    await this.inner.remove(keys);
  }
}
