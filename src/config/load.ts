import { createPrivateKey } from 'node:crypto';
import { parseInstant } from './instant';
import { envSchema, SETTINGS, type RawSettings } from './schema';
import { buildTargetConfig, type TargetConfig } from '../target/config';
import { orderedTypes } from '../sync/resource-types';
import { defaultScopesFor, readScopesOf, typesWithoutReadScope } from '../openemr/scopes';

export interface RetrySettings {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  maxTotalMs: number;
  /** Longest server-requested wait honoured (default maxDelayMs); the AHDS writer sets 60 s, AHDS's cap. */
  maxServerWaitMs?: number;
}

export interface Config {
  openemr: {
    baseUrl: string;
    site: string;
    fhirBaseUrl: string;
    tokenUrl: string;
    clientId: string;
    /** PEM or JWK JSON; absent when it is to be read from Key Vault (privateKeySecretUri). */
    privateKey?: string;
    privateKeySecretUri?: string;
    keyId?: string;
    scopes: string;
    readConcurrency: number;
    pageSize: number;
  };
  ahds: {
    fhirUrl: string;
    audience: string;
    batchSize: number;
    maxConcurrency: number;
    initialConcurrency: number;
    bundleTimeoutMs: number;
    conflictRetries: number;
    serverTimeLimitMs: number;
    appMaxBundles: number;
  };
  azureAuth: {
    mode: 'managed-identity' | 'default' | 'client-secret';
    clientId?: string;
    tenantId?: string;
    clientSecret?: string;
    authorityHost?: string;
    disableInstanceDiscovery: boolean;
  };
  http: { timeoutMs: number; retry: RetrySettings };
  storage: { connectionString?: string; accountName?: string };
  sync: {
    schedule: string;
    reconcileSchedule: string;
    lagSeconds: number;
    overlapSeconds: number;
    initialSince: string;
    leaseSeconds: number;
    tablePrefix: string;
    queueName: string;
    reconcileDeleteMode: 'report-only' | 'delete';
    /** SYNC_RESOURCE_TYPES in reference order (src/sync/resource-types.ts). */
    resourceTypes: string[];
  };
  mapping: {
    conceptMapFiles: string[];
    localCodeSystem: string;
    uncarriedReferences: 'keep' | 'drop';
    profileClaims: 'keep' | 'drop';
    validation: 'ahds' | 'strict';
  };
  privacy: {
    dropIdentifierSystems: string[];
    deid: { enabled: boolean; key?: string };
  };
  /** AUDIT_TRAIL (src/audit/trail.ts). */
  audit: { mode: 'off' | 'per-run' | 'per-resource' };
  /** cloudRole: the Function App's name (WEBSITE_SITE_NAME, set by the platform), so the connector's telemetry and the host's share one node. */
  telemetry: { connectionString?: string; cloudRole?: string };
  /** How OpenEMR is read (export or search): see src/openemr/reader.ts ReadSettings. */
  openemrRead: {
    exportEnabled: boolean;
    exportKickoffTimeoutMs: number;
    exportDownloadTimeoutMs: number;
    exportGapSeconds: number;
    observationSpanSeconds: number;
    /** How reconciliation reads the source (search finds NULL-dated rows; export does not). */
    reconcileSource: 'search' | 'export';
  };
  /** The FHIR server written to: kind, URL, auth (src/target). */
  target: TargetConfig;
}

/** A setting is missing or malformed. The message names the setting and never holds its value. */
export class ConfigError extends Error {
  readonly code = 'ConfigError';
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

const KNOWN = new Set(SETTINGS.map((s) => s.name));

/**
 * Reads and checks every setting. Throws ConfigError with one sentence naming the first bad
 * setting. This is the only place in the connector that reads process.env.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Unset and empty are the same thing in app settings and local.settings.json.
  const input: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (KNOWN.has(key) && value !== undefined && value.trim() !== '') input[key] = value.trim();
  }
  for (const [key, value] of Object.entries(input)) checkKeyVaultReference(key, value);
  const parsed = envSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const setting = String(issue.path[0] ?? 'settings');
    const message = issue.code === 'invalid_type' && input[setting] === undefined ? 'is required' : issue.message;
    throw new ConfigError(setting, sentence(setting, message));
  }
  return build(parsed.data, env);
}

/**
 * App Service replaces `@Microsoft.KeyVault(...)` with the secret before the app starts; a value
 * still in that form means it could not, and every other check would blame the value's format.
 */
export function checkKeyVaultReference(setting: string, value: string): void {
  if (!/^@Microsoft\.KeyVault\(/i.test(value.trim())) return;
  const name = /SecretName=([^;)]+)/i.exec(value)?.[1] ?? /\/secrets\/([^/;)]+)/i.exec(value)?.[1];
  throw new ConfigError(
    setting,
    `Setting ${setting} is a Key Vault reference that was not resolved${name ? ` (secret ${name})` : ''}: the secret does not exist yet, or the app's identity lacks the Key Vault Secrets User role on the vault (keyVaultReferenceIdentity names the identity used). Store the secret (docs/operations.md) and restart the app; the portal shows each reference's status under Environment variables.`,
  );
}

function sentence(setting: string, message: string): string {
  const doc = SETTINGS.find((s) => s.name === setting);
  const hint = message === 'is required' && doc ? `: ${doc.description}` : '';
  return `Setting ${setting} ${message}${hint}`.replace(/\.*$/, '.');
}

function fail(setting: string, message: string): never {
  throw new ConfigError(setting, sentence(setting, message));
}

function build(s: RawSettings, env: NodeJS.ProcessEnv): Config {
  if (!s.OPENEMR_PRIVATE_KEY && !s.OPENEMR_PRIVATE_KEY_SECRET_URI) {
    if (s.OPENEMR_CLIENT_SECRET) {
      fail(
        'OPENEMR_CLIENT_SECRET',
        'cannot be used: OpenEMR accepts only a signed JWT assertion (SMART Backend Services) for client_credentials, so set OPENEMR_PRIVATE_KEY to the RSA private key registered with the client (npm run openemr:register makes one)',
      );
    }
    fail(
      'OPENEMR_PRIVATE_KEY',
      'is required (or OPENEMR_PRIVATE_KEY_SECRET_URI): the RSA private key that signs the client assertion, as PEM or JWK JSON',
    );
  }
  if (s.OPENEMR_PRIVATE_KEY) checkPrivateKey(s.OPENEMR_PRIVATE_KEY);

  const mode = s.AZURE_AUTH_MODE;
  if (mode === 'client-secret') {
    for (const name of ['AZURE_TENANT_ID', 'AZURE_CLIENT_ID', 'AZURE_CLIENT_SECRET'] as const) {
      if (!s[name]) fail(name, 'is required when AZURE_AUTH_MODE is client-secret');
    }
  }
  if (s.AHDS_INITIAL_CONCURRENCY > s.AHDS_MAX_CONCURRENCY) {
    fail('AHDS_INITIAL_CONCURRENCY', `must not exceed AHDS_MAX_CONCURRENCY (${s.AHDS_MAX_CONCURRENCY})`);
  }
  if (!s.AzureWebJobsStorage && !s.AzureWebJobsStorage__accountName) {
    fail(
      'AzureWebJobsStorage',
      'is required (or AzureWebJobsStorage__accountName for an identity-based connection): the connector keeps watermarks, leases and dead letters in Azure Storage',
    );
  }
  const deidOn = s.DEID_MODE === 'on';
  if (deidOn && (!s.DEID_KEY || s.DEID_KEY.length < 32)) {
    fail('DEID_KEY', 'must be a secret of at least 32 characters when DEID_MODE is on');
  }

  const resourceTypes = orderedTypes(s.SYNC_RESOURCE_TYPES).map((t) => t.type);
  const scopes = s.OPENEMR_SCOPES ?? defaultScopesFor(resourceTypes);
  const unscoped = typesWithoutReadScope(scopes, resourceTypes);
  if (unscoped.length > 0) {
    fail(
      'OPENEMR_SCOPES',
      `lacks ${readScopesOf(unscoped).join(' ')} (or the .rs form from OpenEMR 7.0.4): SYNC_RESOURCE_TYPES carries ${unscoped.join(', ')}, and OpenEMR answers a search without its scope with 401`,
    );
  }

  const baseUrl = s.OPENEMR_BASE_URL.replace(/\/+$/, '');
  const target = buildTargetConfig(s, fail);
  const fhirUrl = target.fhirUrl;
  return {
    openemr: {
      baseUrl,
      site: s.OPENEMR_SITE,
      fhirBaseUrl: `${baseUrl}/apis/${s.OPENEMR_SITE}/fhir`,
      tokenUrl: `${baseUrl}/oauth2/${s.OPENEMR_SITE}/token`,
      clientId: s.OPENEMR_CLIENT_ID,
      privateKey: s.OPENEMR_PRIVATE_KEY,
      privateKeySecretUri: s.OPENEMR_PRIVATE_KEY_SECRET_URI,
      keyId: s.OPENEMR_KEY_ID,
      scopes,
      readConcurrency: s.OPENEMR_READ_CONCURRENCY,
      pageSize: s.OPENEMR_PAGE_SIZE,
    },
    ahds: {
      fhirUrl,
      audience: (s.AHDS_AUDIENCE ?? fhirUrl).replace(/\/+$/, ''),
      batchSize: s.AHDS_BATCH_SIZE,
      maxConcurrency: s.AHDS_MAX_CONCURRENCY,
      initialConcurrency: s.AHDS_INITIAL_CONCURRENCY,
      bundleTimeoutMs: s.AHDS_BUNDLE_TIMEOUT_MS,
      conflictRetries: s.AHDS_CONFLICT_RETRIES,
      serverTimeLimitMs: s.AHDS_SERVER_TIME_LIMIT_MS,
      appMaxBundles: s.AHDS_APP_MAX_BUNDLES,
    },
    azureAuth: {
      mode,
      clientId: s.AZURE_CLIENT_ID,
      tenantId: s.AZURE_TENANT_ID,
      clientSecret: s.AZURE_CLIENT_SECRET,
      authorityHost: s.AZURE_AUTHORITY_HOST,
      disableInstanceDiscovery: s.AZURE_DISABLE_INSTANCE_DISCOVERY,
    },
    http: {
      timeoutMs: s.HTTP_TIMEOUT_MS,
      retry: {
        maxAttempts: s.RETRY_MAX_ATTEMPTS,
        baseDelayMs: s.RETRY_BASE_DELAY_MS,
        maxDelayMs: s.RETRY_MAX_DELAY_MS,
        maxTotalMs: s.RETRY_MAX_TOTAL_MS,
      },
    },
    storage: { connectionString: s.AzureWebJobsStorage, accountName: s.AzureWebJobsStorage__accountName },
    sync: {
      schedule: s.SYNC_SCHEDULE,
      reconcileSchedule: s.RECONCILE_SCHEDULE,
      lagSeconds: s.SYNC_LAG_SECONDS,
      overlapSeconds: s.SYNC_OVERLAP_SECONDS,
      initialSince: new Date(parseInstant(s.SYNC_INITIAL_SINCE)!).toISOString(),
      leaseSeconds: s.SYNC_LEASE_SECONDS,
      tablePrefix: s.SYNC_TABLE_PREFIX,
      queueName: s.SYNC_QUEUE_NAME,
      reconcileDeleteMode: s.RECONCILE_DELETE_MODE,
      resourceTypes,
    },
    mapping: {
      conceptMapFiles: s.MAPPING_CONCEPTMAP_FILES ?? [],
      localCodeSystem: s.MAPPING_LOCAL_CODE_SYSTEM,
      uncarriedReferences: s.MAPPING_UNCARRIED_REFERENCES,
      profileClaims: s.MAPPING_PROFILE_CLAIMS,
      validation: s.MAPPING_VALIDATION,
    },
    privacy: {
      dropIdentifierSystems: s.PRIVACY_DROP_IDENTIFIER_SYSTEMS,
      deid: { enabled: deidOn, key: s.DEID_KEY },
    },
    audit: { mode: s.AUDIT_TRAIL },
    telemetry: { connectionString: s.APPLICATIONINSIGHTS_CONNECTION_STRING, cloudRole: env.WEBSITE_SITE_NAME?.trim() || undefined },
    openemrRead: {
      exportEnabled: s.OPENEMR_EXPORT,
      exportKickoffTimeoutMs: s.OPENEMR_EXPORT_KICKOFF_TIMEOUT_MS,
      exportDownloadTimeoutMs: s.OPENEMR_EXPORT_DOWNLOAD_TIMEOUT_MS,
      exportGapSeconds: s.OPENEMR_EXPORT_GAP_SECONDS,
      observationSpanSeconds: s.OPENEMR_OBSERVATION_SPAN_SECONDS,
      reconcileSource: s.RECONCILE_SOURCE,
    },
    target,
  };
}

function checkPrivateKey(value: string): void {
  try {
    const trimmed = value.trim();
    const key = trimmed.startsWith('{')
      ? createPrivateKey({ key: JSON.parse(trimmed), format: 'jwk' })
      : createPrivateKey(trimmed.replace(/\\n/g, '\n'));
    if (key.asymmetricKeyType !== 'rsa') throw new Error('not RSA');
  } catch {
    fail(
      'OPENEMR_PRIVATE_KEY',
      'must be an RSA private key as PEM (PKCS#8 or PKCS#1) or JWK JSON (RS384 is the only algorithm OpenEMR accepts)',
    );
  }
}

/** The private key material in the form jose imports, with escaped newlines from app settings undone. */
export function normalisePrivateKey(value: string): { kind: 'jwk'; jwk: Record<string, unknown> } | { kind: 'pem'; pem: string } {
  const trimmed = value.trim();
  if (trimmed.startsWith('{')) return { kind: 'jwk', jwk: JSON.parse(trimmed) as Record<string, unknown> };
  return { kind: 'pem', pem: trimmed.replace(/\\n/g, '\n') };
}
