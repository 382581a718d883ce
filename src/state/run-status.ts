import type { TableClient } from '@azure/data-tables';
import { safeKey, statusOf } from './storage';

/**
 * Where a long run requested over HTTP stands (full sync, reconcile, replay of every dead letter,
 * backfill), so the caller that got 202 can follow it: one row per run, and for a backfill one
 * row per work item, written by whichever worker did it (so no two workers update the same row).
 * Counts, phases and identifiers only: never resource content.
 */
export type RunKind = 'sync' | 'reconcile' | 'replay' | 'backfill';
export type RunState = 'queued' | 'running' | 'succeeded' | 'partial' | 'failed' | 'skipped';

export const FINAL_STATES: readonly RunState[] = ['succeeded', 'partial', 'failed', 'skipped'];

export interface RunProgressView {
  phase?: string;
  read: number;
  written: number;
  failed: number;
  /** Share of the work done (0..1), when it can be told. */
  fraction?: number;
  updatedAt: string;
}

export interface BackfillItems {
  /** Work items planned (known once the plan is enqueued). */
  total: number;
  /** Work items finished (their resources written or dead-lettered). */
  done: number;
  /** Work items that themselves ended as dead letters (replayable as type WorkItem). */
  deadLettered: number;
  read: number;
  written: number;
  failed: number;
}

export interface RunStatus {
  runId: string;
  kind: RunKind;
  state: RunState;
  /** What was asked (query parameters, normalised). */
  request: Record<string, string | number | boolean>;
  requestedAt: string;
  startedAt?: string;
  finishedAt?: string;
  progress?: RunProgressView;
  items?: BackfillItems;
  /** The run's final summary (counts and identifiers). */
  result?: unknown;
  error?: { failureClass: string; message: string };
}

export interface WorkItemRecord {
  outcome: 'done' | 'dead-lettered';
  read: number;
  written: number;
  failed: number;
  at: string;
}

export interface RunStatusStore {
  create(status: RunStatus): Promise<void>;
  /** Merges the given fields into the run's row. */
  update(runId: string, patch: Partial<Omit<RunStatus, 'runId' | 'kind' | 'requestedAt'>>): Promise<void>;
  /** The run with its work items counted; undefined when there is no such run. */
  get(runId: string): Promise<RunStatus | undefined>;
  /** One backfill work item finished (idempotent: a redelivered item overwrites its own row). */
  recordItem(runId: string, index: number, record: WorkItemRecord): Promise<void>;
}

const RUN_ROW = 'run';
const JSON_FIELDS = ['request', 'progress', 'items', 'result', 'error'] as const;
/** A table property holds at most 64 KiB; a result bigger than this keeps its counts only. */
const MAX_FIELD_CHARS = 30_000;

type Row = Record<string, unknown> & { partitionKey: string; rowKey: string };

function toRow(runId: string, fields: Record<string, unknown>): Row {
  const row: Row = { partitionKey: safeKey(runId), rowKey: RUN_ROW };
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    row[key] = (JSON_FIELDS as readonly string[]).includes(key) ? compactJson(value) : value;
  }
  return row;
}

/** JSON of a value, its arrays dropped (counts kept) when it would not fit in a table property. */
export function compactJson(value: unknown): string {
  const text = JSON.stringify(value);
  if (text.length <= MAX_FIELD_CHARS) return text;
  const counts = JSON.stringify(value, (_key, v: unknown) => (Array.isArray(v) ? { omitted: v.length } : v));
  return counts.length <= MAX_FIELD_CHARS ? counts : JSON.stringify({ omitted: 'too large' });
}

function fromRow(row: Record<string, unknown>): RunStatus {
  const status: Record<string, unknown> = {};
  for (const key of ['runId', 'kind', 'state', 'requestedAt', 'startedAt', 'finishedAt'])
    if (row[key] !== undefined) status[key] = row[key];
  for (const key of JSON_FIELDS) if (typeof row[key] === 'string') status[key] = JSON.parse(row[key] as string);
  return status as unknown as RunStatus;
}

/** Adds the work items' rows to a backfill's status, and settles its state once every item is done. */
export function withItems(status: RunStatus, records: readonly WorkItemRecord[]): RunStatus {
  if (status.kind !== 'backfill' || !status.items) return status;
  const items: BackfillItems = { ...status.items, done: 0, deadLettered: 0, read: 0, written: 0, failed: 0 };
  let last = '';
  for (const r of records) {
    items.done++;
    if (r.outcome === 'dead-lettered') items.deadLettered++;
    items.read += r.read;
    items.written += r.written;
    items.failed += r.failed;
    if (r.at > last) last = r.at;
  }
  const out: RunStatus = { ...status, items };
  if (status.state === 'running' && items.done >= items.total) {
    out.state = items.deadLettered > 0 || items.failed > 0 ? 'partial' : 'succeeded';
    out.finishedAt = last || status.startedAt;
  }
  return out;
}

/** Run status in an Azure table (`${SYNC_TABLE_PREFIX}runs`). */
export class TableRunStatusStore implements RunStatusStore {
  constructor(private readonly table: () => Promise<TableClient>) {}

  async create(status: RunStatus): Promise<void> {
    const client = await this.table();
    await client.createEntity(toRow(status.runId, { ...status }));
  }

  async update(runId: string, patch: Partial<RunStatus>): Promise<void> {
    const client = await this.table();
    await client.upsertEntity(toRow(runId, { ...patch }), 'Merge');
  }

  async get(runId: string): Promise<RunStatus | undefined> {
    const client = await this.table();
    let run: RunStatus | undefined;
    const records: WorkItemRecord[] = [];
    try {
      const pk = safeKey(runId).replace(/'/g, "''");
      for await (const row of client.listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq '${pk}'` } })) {
        if (row.rowKey === RUN_ROW) run = fromRow(row);
        else
          records.push({
            outcome: row.outcome as WorkItemRecord['outcome'],
            read: Number(row.read),
            written: Number(row.written),
            failed: Number(row.failed),
            at: String(row.at),
          });
      }
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
    return run && withItems(run, records);
  }

  async recordItem(runId: string, index: number, record: WorkItemRecord): Promise<void> {
    const client = await this.table();
    await client.upsertEntity({ partitionKey: safeKey(runId), rowKey: `item-${String(index).padStart(6, '0')}`, ...record }, 'Replace');
  }
}

/** The same in memory (tests, and a connector without storage never offers long runs). */
export class MemoryRunStatusStore implements RunStatusStore {
  private readonly runs = new Map<string, RunStatus>();
  private readonly items = new Map<string, Map<number, WorkItemRecord>>();

  async create(status: RunStatus): Promise<void> {
    this.runs.set(status.runId, JSON.parse(JSON.stringify(status)) as RunStatus);
  }
  async update(runId: string, patch: Partial<RunStatus>): Promise<void> {
    const current = this.runs.get(runId);
    if (current) this.runs.set(runId, JSON.parse(JSON.stringify({ ...current, ...patch })) as RunStatus);
  }
  async get(runId: string): Promise<RunStatus | undefined> {
    const run = this.runs.get(runId);
    return run && withItems(run, [...(this.items.get(runId)?.values() ?? [])]);
  }
  async recordItem(runId: string, index: number, record: WorkItemRecord): Promise<void> {
    let m = this.items.get(runId);
    if (!m) this.items.set(runId, (m = new Map()));
    m.set(index, record);
  }
}
