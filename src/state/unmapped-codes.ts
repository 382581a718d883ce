import type { TableClient } from '@azure/data-tables';
import { statusOf } from './storage';

export interface UnmappedCodeCount {
  system: string;
  code: string;
  display?: string;
  count: number;
  /** ISO time it was last seen. */
  lastSeen: string;
}

export interface UnmappedCodeStore {
  add(entries: Array<{ system: string; code: string; display?: string; count: number }>): Promise<void>;
  list(limit?: number): Promise<UnmappedCodeCount[]>;
}

type Entries = Parameters<UnmappedCodeStore['add']>[0];

/**
 * Adds a run's unmapped-code counts (all of them, not a summary's top 50) to the store. Best
 * effort: a run is not failed for its report, but the loss is logged.
 */
export async function addRunCounts(
  store: UnmappedCodeStore | undefined,
  counts: { size: number; entries(): Entries },
  log?: (message: string) => void,
): Promise<void> {
  if (!store || counts.size === 0) return;
  try {
    await store.add(counts.entries());
  } catch (error) {
    log?.(`Unmapped-code counts could not be stored (${(error as Error)?.name ?? 'Error'}).`);
  }
}

const PARTITION = 'unmapped';
/** ETag-conditional read-add-write attempts per code under contention. */
const MAX_ATTEMPTS = 20;

/** Counts of codings no ConceptMap covered, summed over runs, one row per system|code. Codes only: no patient data. */
export class TableUnmappedCodeStore implements UnmappedCodeStore {
  constructor(
    private readonly table: () => Promise<TableClient>,
    private readonly now: () => number = Date.now,
  ) {}

  async add(entries: Array<{ system: string; code: string; display?: string; count: number }>): Promise<void> {
    if (entries.length === 0) return;
    const client = await this.table();
    for (const entry of entries) {
      const rowKey = Buffer.from(`${entry.system}|${entry.code}`, 'utf8').toString('base64url').slice(0, 900);
      for (let attempt = 1; ; attempt++) {
        try {
          const current = await client.getEntity<{ count: number }>(PARTITION, rowKey).catch((error: unknown) => {
            if (statusOf(error) === 404) return undefined;
            throw error;
          });
          const row = {
            partitionKey: PARTITION,
            rowKey,
            system: entry.system,
            code: entry.code,
            ...(entry.display ? { display: entry.display.slice(0, 200) } : {}),
            count: (current?.count ?? 0) + entry.count,
            lastSeen: new Date(this.now()).toISOString(),
          };
          if (current) await client.updateEntity(row, 'Replace', { etag: current.etag });
          else await client.createEntity(row);
          break;
        } catch (error) {
          // Another run counted the same code at the same moment: read again and add, after a
          // random pause so that parallel workers stop colliding. Never give up silently.
          if (statusOf(error) !== 412 && statusOf(error) !== 409) throw error;
          if (attempt >= MAX_ATTEMPTS) throw new Error(`Unmapped-code count not stored after ${MAX_ATTEMPTS} concurrent updates.`);
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt));
        }
      }
    }
  }

  async list(limit = 500): Promise<UnmappedCodeCount[]> {
    const client = await this.table();
    const out: UnmappedCodeCount[] = [];
    for await (const e of client.listEntities<UnmappedCodeCount>({ queryOptions: { filter: `PartitionKey eq '${PARTITION}'` } })) {
      out.push({ system: e.system, code: e.code, ...(e.display ? { display: e.display } : {}), count: e.count, lastSeen: e.lastSeen });
    }
    return out.sort((a, b) => b.count - a.count || a.system.localeCompare(b.system) || a.code.localeCompare(b.code)).slice(0, limit);
  }
}
