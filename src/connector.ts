import type { TokenCredential } from '@azure/identity';
import { createAzureCredential } from './ahds/credential';
import { TableBundleBudget } from './ahds/table-budget';
import type { AhdsWriter } from './ahds/writer';
import type { Config } from './config/load';
import { AuditTrail } from './audit/trail';
import { createResourceMapper, loadConceptMaps } from './mapping';
import type { MappingOptions, ResourceMapper } from './mapping/contract';
import { resolvePrivateKey } from './openemr/key-source';
import { OpenEmrReader } from './openemr/reader';
import { SmartBackendTokenProvider } from './openemr/token-provider';
import { MemoryDeadLetterStore, type DeadLetterStore } from './sync/dead-letters';
import { createStateStores, type StateStores } from './state';
import { SyncService } from './sync/sync-service';
import { NoopTelemetry, type Telemetry } from './telemetry/telemetry';
import { createTargetWriter } from './target';

/** Everything a trigger needs, built once per process from the settings. */
export interface Connector {
  config: Config;
  telemetry: Telemetry;
  reader: OpenEmrReader;
  writer: AhdsWriter;
  mapper: ResourceMapper;
  deadLetters: DeadLetterStore;
  sync: SyncService;
  openemrAuth: SmartBackendTokenProvider;
  /** Watermarks, lease, dead-letter and unmapped-code tables; absent when no storage is configured. */
  state?: StateStores;
  /** The Entra credential (made on first use), for the AHDS preflight check. */
  getCredential: () => TokenCredential;
}

export interface ConnectorOverrides {
  telemetry?: Telemetry;
  credential?: TokenCredential;
  deadLetters?: DeadLetterStore;
  mapper?: ResourceMapper;
  /** State stores to use instead of those built from the storage settings; null: none. */
  state?: StateStores | null;
}

export async function createConnector(config: Config, overrides: ConnectorOverrides = {}): Promise<Connector> {
  const telemetry = overrides.telemetry ?? new NoopTelemetry();
  let credential = overrides.credential;
  const getCredential = (): TokenCredential => (credential ??= createAzureCredential(config.azureAuth));
  const privateKey = await resolvePrivateKey(config.openemr, getCredential);
  const openemrAuth = new SmartBackendTokenProvider({ ...config.openemr, privateKey }, config.http, telemetry);
  const reader = new OpenEmrReader(config.openemr, config.http, openemrAuth, telemetry, config.openemrRead);
  const mapper = overrides.mapper ?? createResourceMapper(mappingOptions(config));
  // With storage configured, dead letters go to the table (guarded: a storage outage never fails a
  // single-item sync; runs that close windows check the guard before advancing a watermark).
  const state = overrides.state === undefined ? createStateStores(config, getCredential) : (overrides.state ?? undefined);
  const deadLetters = overrides.deadLetters ?? state?.deadLetters ?? new MemoryDeadLetterStore();
  // One budget of bundles in flight for the whole app, in the same storage (none without storage).
  const budget =
    state && config.ahds.appMaxBundles > 0
      ? new TableBundleBudget(
          () => state.storage.table(`${config.sync.tablePrefix}budget`),
          config.ahds.appMaxBundles,
          config.ahds.bundleTimeoutMs + 30_000,
          Date.now,
          Math.random,
          (message) => console.warn(message),
        )
      : undefined;
  const { writer } = await createTargetWriter(config, telemetry, getCredential, { budget });
  const audit =
    config.audit.mode === 'off'
      ? undefined
      : new AuditTrail(
          {
            mode: config.audit.mode,
            sourceFhirBase: config.openemr.fhirBaseUrl,
            ...(config.privacy.deid.enabled ? { deidKey: config.privacy.deid.key } : {}),
            policy: {
              // The maps the mapper applies (shipped, then the user's), read once more for their url|version.
              conceptMaps: overrides.mapper ? [] : loadConceptMaps(config.mapping.conceptMapFiles).loaded,
              deid: config.privacy.deid.enabled,
              uncarriedReferences: config.mapping.uncarriedReferences,
              profileClaims: config.mapping.profileClaims,
              localCodeSystem: config.mapping.localCodeSystem,
            },
          },
          writer,
        );
  const sync = new SyncService({
    reader,
    writer,
    mapper,
    telemetry,
    deadLetters,
    ...(audit ? { audit } : {}),
    settings: {
      batchSize: config.ahds.batchSize,
      readConcurrency: config.openemr.readConcurrency,
      pageSize: config.openemr.pageSize,
      resourceTypes: config.sync.resourceTypes,
    },
  });
  return { config, telemetry, reader, writer, mapper, deadLetters, sync, openemrAuth, state, getCredential };
}

/** The mapping stage's options from the settings (terminology, references, privacy). */
export function mappingOptions(
  config: Pick<Config, 'mapping' | 'privacy'> & { sync?: Pick<Config['sync'], 'resourceTypes'> },
): MappingOptions {
  return {
    ...(config.sync?.resourceTypes ? { carriedTypes: config.sync.resourceTypes } : {}),
    conceptMapFiles: config.mapping.conceptMapFiles,
    localCodeSystem: config.mapping.localCodeSystem,
    uncarriedReferences: config.mapping.uncarriedReferences,
    profileClaims: config.mapping.profileClaims,
    validation: config.mapping.validation,
    dropIdentifierSystems: config.privacy.dropIdentifierSystems,
    deid: config.privacy.deid,
  };
}
