import type { TokenCredential } from '@azure/identity';
import type { Config } from '../config/load';
import type { DeadLetterStore } from '../sync/dead-letters';
import { GuardedDeadLetterStore, TableDeadLetterStore } from './dead-letter-table';
import { TableLeaseManager, type LeaseManager } from './lease';
import { TableRunStatusStore, type RunStatusStore } from './run-status';
import { createStorageAccess, type StorageAccess } from './storage';
import { TableUnmappedCodeStore, type UnmappedCodeStore } from './unmapped-codes';
import { TableWatermarkStore, type WatermarkStore } from './watermarks';

export * from './lease';
export * from './watermarks';
export * from './unmapped-codes';
export * from './run-status';
export { GuardedDeadLetterStore, TableDeadLetterStore } from './dead-letter-table';
export { createStorageAccess, type StorageAccess } from './storage';

/** Everything the connector keeps between runs, in Azure Storage. */
export interface StateStores {
  storage: StorageAccess;
  watermarks: WatermarkStore;
  lease: LeaseManager;
  /** Table store behind a guard (see GuardedDeadLetterStore). */
  deadLetters: GuardedDeadLetterStore;
  unmapped: UnmappedCodeStore;
  /** Status of long runs requested over HTTP (202 + status URL). */
  runs: RunStatusStore;
  tableNames: { watermarks: string; leases: string; deadLetters: string; unmapped: string; runs: string };
  queueName: string;
}

export function tableNames(prefix: string): StateStores['tableNames'] {
  return {
    watermarks: `${prefix}watermarks`,
    leases: `${prefix}leases`,
    deadLetters: `${prefix}deadletters`,
    unmapped: `${prefix}unmapped`,
    runs: `${prefix}runs`,
  };
}

/** The state stores, or undefined when no storage is configured. Nothing is contacted until used. */
export function createStateStores(
  config: Pick<Config, 'storage' | 'sync'>,
  getCredential: () => TokenCredential,
  options: { now?: () => number; warn?: (message: string) => void; deadLetters?: DeadLetterStore } = {},
): StateStores | undefined {
  const storage = createStorageAccess(config.storage, getCredential);
  if (!storage) return undefined;
  const names = tableNames(config.sync.tablePrefix);
  return {
    storage,
    watermarks: new TableWatermarkStore(() => storage.table(names.watermarks)),
    lease: new TableLeaseManager(() => storage.table(names.leases), config.sync.leaseSeconds, options.now),
    deadLetters: new GuardedDeadLetterStore(
      options.deadLetters ?? new TableDeadLetterStore(() => storage.table(names.deadLetters)),
      options.warn,
    ),
    unmapped: new TableUnmappedCodeStore(() => storage.table(names.unmapped), options.now),
    runs: new TableRunStatusStore(() => storage.table(names.runs)),
    tableNames: names,
    queueName: config.sync.queueName,
  };
}
