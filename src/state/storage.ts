import { TableClient, type TableServiceClientOptions } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';
import { QueueClient } from '@azure/storage-queue';
import type { Config } from '../config/load';

/**
 * Azure Storage clients from the connector's settings: a connection string (Azurite locally, or a
 * key-based account) or an account name reached with the connector's TokenCredential (managed
 * identity in Azure: AzureWebJobsStorage__accountName). Nothing touches the network until a
 * table or queue is used; each table is created once per process, on first use.
 */
export interface StorageAccess {
  /** The table client, the table created if it did not exist. */
  table(name: string): Promise<TableClient>;
  /** The queue client, the queue created if it did not exist. */
  queue(name: string): Promise<QueueClient>;
  /** Where state lives, for logs: the account name or "connection string", never a key. */
  readonly where: string;
}

const TABLE_OPTIONS = (insecure: boolean): TableServiceClientOptions => ({
  allowInsecureConnection: insecure,
  // A few quick retries: callers decide what a failure means (a run keeps its watermark).
  retryOptions: { maxRetries: 3, retryDelayInMs: 200, maxRetryDelayInMs: 2000 },
});

/** True when every endpoint of the connection string is on loopback (Azurite). */
function isLoopback(connectionString: string): boolean {
  if (/UseDevelopmentStorage=true/i.test(connectionString)) return true;
  const endpoints = [...connectionString.matchAll(/(?:Table|Queue|Blob)Endpoint=([^;]+)/gi)].map((m) => m[1]!);
  return endpoints.length > 0 && endpoints.every((e) => /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:|\/)/i.test(e));
}

export function createStorageAccess(storage: Config['storage'], getCredential: () => TokenCredential): StorageAccess | undefined {
  const { connectionString, accountName } = storage;
  if (!connectionString && !accountName) return undefined;
  const tables = new Map<string, Promise<TableClient>>();
  const queues = new Map<string, Promise<QueueClient>>();
  const makeTable = (name: string): TableClient =>
    connectionString
      ? TableClient.fromConnectionString(connectionString, name, TABLE_OPTIONS(isLoopback(connectionString)))
      : new TableClient(`https://${accountName}.table.core.windows.net`, name, getCredential(), TABLE_OPTIONS(false));
  const makeQueue = (name: string): QueueClient =>
    connectionString
      ? new QueueClient(connectionString, name)
      : new QueueClient(`https://${accountName}.queue.core.windows.net/${name}`, getCredential());
  const once = <T>(cache: Map<string, Promise<T>>, name: string, create: () => Promise<T>): Promise<T> => {
    let p = cache.get(name);
    if (!p) {
      p = create().catch((error: unknown) => {
        cache.delete(name);
        throw error;
      });
      cache.set(name, p);
    }
    return p;
  };
  return {
    where: accountName && !connectionString ? `account ${accountName}` : 'connection string',
    table: (name) =>
      once(tables, name, async () => {
        const client = makeTable(name);
        await client.createTable();
        return client;
      }),
    queue: (name) =>
      once(queues, name, async () => {
        const client = makeQueue(name);
        await client.createIfNotExists();
        return client;
      }),
  };
}

/** HTTP status of an Azure SDK RestError (or undefined). */
export function statusOf(error: unknown): number | undefined {
  const s = (error as { statusCode?: unknown } | undefined)?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

/** Table keys may not hold / \ # ? or control characters; FHIR ids never do, anything else is encoded. */
export function safeKey(value: string): string {
  if (/^[A-Za-z0-9._-]{1,200}$/.test(value)) return value;
  return `b64.${Buffer.from(value, 'utf8').toString('base64url')}`;
}

export function fromSafeKey(key: string): string {
  return key.startsWith('b64.') ? Buffer.from(key.slice(4), 'base64url').toString('utf8') : key;
}
