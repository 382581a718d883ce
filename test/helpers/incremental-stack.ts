import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import { loadConfig } from '../../src/config/load';
import { contentHash } from '../../src/fhir/canonical';
import type { SyncedResource } from '../../src/fhir/types';
import { createResourceMapper } from '../../src/mapping';
import type { ResourceMapper } from '../../src/mapping/contract';
import { tableNames } from '../../src/state';
import type { Stack } from '../../stack';
import type { SupportedType } from '../../stack/openemr';
import { mappingOptions, type Connector } from '../../src/connector';
import { reconcile } from '../../src/sync/reconcile';

/** The connector settings a test uses against a stack: fast retries, a table prefix of its own. */
export function incrementalSettings(stack: Stack, extra: Record<string, string> = {}): Record<string, string> {
  return { ...stack.env, RETRY_BASE_DELAY_MS: '20', RETRY_MAX_DELAY_MS: '1500', AHDS_SERVER_TIME_LIMIT_MS: '300', ...extra };
}

/** A mapper that knows which types the settings carry (SYNC_RESOURCE_TYPES): the diffs compare those. */
export interface CarryingMapper extends ResourceMapper {
  carriedTypes: SupportedType[];
}

export function mapperFor(settings: Record<string, string>): CarryingMapper {
  const config = loadConfig(settings);
  return Object.assign(createResourceMapper(mappingOptions(config)), { carriedTypes: config.sync.resourceTypes as SupportedType[] });
}

/** The types to compare: given, else those the mapper's settings carry, else Patient and Observation. */
export function typesOf(mapper: ResourceMapper, types: readonly SupportedType[] | undefined): readonly SupportedType[] {
  return types ?? (mapper as Partial<CarryingMapper>).carriedTypes ?? ['Patient', 'Observation'];
}

/** What AHDS should hold: every source resource the mapper accepts, by "Type/id" -> content hash. */
export function expectedTarget(
  stack: Stack,
  mapper: ResourceMapper,
  types?: readonly SupportedType[],
): { hashes: Map<string, string>; unmappable: string[] } {
  const hashes = new Map<string, string>();
  const unmappable: string[] = [];
  for (const type of typesOf(mapper, types)) {
    for (const id of stack.openemr.store.ids(type)) {
      const outcome = mapper.map(stack.openemr.store.get(type, id) as unknown as SyncedResource);
      if (outcome.ok) hashes.set(`${type}/${outcome.resource.id}`, contentHash(outcome.resource as never));
      else unmappable.push(`${type}/${id}`);
    }
  }
  return { hashes, unmappable };
}

export async function targetHashes(stack: Stack, types: readonly string[] = ['Patient', 'Observation']): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const type of types) {
    for (const r of await stack.ahds.snapshot(type)) out.set(`${type}/${r.id}`, contentHash(r as never));
  }
  return out;
}

/** Differences between the mapped source and the target: empty when they are equal. */
export async function targetDiff(
  stack: Stack,
  mapper: ResourceMapper,
  types?: readonly SupportedType[],
): Promise<{ missing: string[]; stale: string[]; extra: string[] }> {
  const compared = typesOf(mapper, types);
  return diffHashes(expectedTarget(stack, mapper, compared).hashes, await targetHashes(stack, compared));
}

/** What is missing, stale or extra in `actual` ("Type/id" -> content hash) against `expected`. */
export function diffHashes(
  expected: Map<string, string>,
  actual: Map<string, string>,
): { missing: string[]; stale: string[]; extra: string[] } {
  const missing: string[] = [];
  const stale: string[] = [];
  for (const [key, hash] of expected) {
    const got = actual.get(key);
    if (got === undefined) missing.push(key);
    else if (got !== hash) stale.push(key);
  }
  const extra = [...actual.keys()].filter((k) => !expected.has(k));
  return { missing, stale, extra };
}

export function table(stack: Stack, prefix: string, which: keyof ReturnType<typeof tableNames>): TableClient {
  return TableClient.fromConnectionString(stack.azurite!.connectionString, tableNames(prefix)[which], { allowInsecureConnection: true });
}

/** Every entity of a table, as plain objects (for privacy scans and assertions). */
export async function tableRows(
  stack: Stack,
  prefix: string,
  which: keyof ReturnType<typeof tableNames>,
): Promise<Array<Record<string, unknown>>> {
  const client = table(stack, prefix, which);
  const rows: Array<Record<string, unknown>> = [];
  try {
    for await (const e of client.listEntities()) rows.push(e as Record<string, unknown>);
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode !== 404) throw error;
  }
  return rows;
}

/** Simulates the passing of SYNC_LEASE_SECONDS for a crashed holder: its row's expiry moves into the past. */
export async function expireLease(stack: Stack, prefix: string, name = 'sync'): Promise<void> {
  const client = table(stack, prefix, 'leases');
  try {
    const row = await client.getEntity<Record<string, unknown>>('lease', name);
    await client.updateEntity(
      {
        partitionKey: 'lease',
        rowKey: name,
        owner: row.owner,
        expiresAt: new Date(Date.now() - 1000).toISOString(),
        acquiredAt: row.acquiredAt,
      },
      'Replace',
      { etag: row.etag },
    );
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode !== 404) throw error;
  }
}

export function queueClient(stack: Stack, name: string): QueueClient {
  return new QueueClient(stack.azurite!.connectionString, name);
}

/** Drains a Storage queue the way the Functions host would (the local host's queue worker). */
export { drainQueue } from '../../stack/queue-worker';

/** Keeps the first `observations` Observations of the sample data (all Patients): smaller, faster runs. */
export function trimSource(stack: Stack, observations: number): void {
  for (const id of stack.openemr.store.ids('Observation').slice(observations)) stack.openemr.store.delete('Observation', id);
}

/** Reconciliation as RECONCILE_SOURCE=search (the default) reads: every Patient, then each one's Observations; deletes on. */
export function reconcileBySearch(connector: Connector): ReturnType<typeof reconcile> {
  return reconcile(
    {
      sync: connector.sync,
      reader: connector.reader,
      writer: connector.writer,
      telemetry: connector.telemetry,
      pageSize: 200,
      deleteMode: 'delete',
      useExport: false,
    },
    { trigger: 'reconcile' },
  );
}
