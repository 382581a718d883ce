import type { TableClient } from '@azure/data-tables';
import { statusOf } from './storage';

/** Where the incremental sync of one resource type has got to: every change before `until` is in AHDS or dead-lettered. */
export interface Watermark {
  resourceType: string;
  /** Upper bound (exclusive) of the last closed window, ISO instant in UTC. */
  until: string;
  /** The run that closed it. */
  runId: string;
  /** How the window was read: pages/windows of the FHIR search API, or a bulk $export. */
  via: 'search' | 'export';
  /** When it was written (connector clock). */
  updatedAt: string;
}

export interface WatermarkStore {
  get(resourceType: string): Promise<Watermark | undefined>;
  /** Moves the watermark forward; an older value than the stored one is ignored (never moves back). */
  advance(mark: Watermark): Promise<void>;
}

const PARTITION = 'watermark';

/** Watermarks in an Azure table (`${SYNC_TABLE_PREFIX}watermarks`), one row per resource type. */
export class TableWatermarkStore implements WatermarkStore {
  constructor(private readonly table: () => Promise<TableClient>) {}

  async get(resourceType: string): Promise<Watermark | undefined> {
    const client = await this.table();
    try {
      const e = await client.getEntity<Omit<Watermark, 'resourceType'>>(PARTITION, resourceType);
      return { resourceType, until: e.until, runId: e.runId, via: e.via, updatedAt: e.updatedAt };
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  async advance(mark: Watermark): Promise<void> {
    const client = await this.table();
    const current = await this.get(mark.resourceType);
    if (current && Date.parse(current.until) >= Date.parse(mark.until)) return;
    await client.upsertEntity(
      {
        partitionKey: PARTITION,
        rowKey: mark.resourceType,
        until: mark.until,
        runId: mark.runId,
        via: mark.via,
        updatedAt: mark.updatedAt,
      },
      'Replace',
    );
  }
}
