import { z } from 'zod';
import { parseInstant } from './instant';
import { OPTIONAL_SCOPES } from '../openemr/scopes';
import { DEFAULT_RESOURCE_TYPES, KNOWN_RESOURCE_TYPES, resourceTypesProblem } from '../sync/resource-types';

/**
 * Every setting the connector reads, with its default and what it means. The README's settings
 * table, local.settings.json.example and infra/ are checked against SETTINGS by tests.
 */
export interface SettingDoc {
  name: string;
  required: boolean;
  secret?: boolean;
  default?: string;
  description: string;
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** http is allowed only on loopback (the local stack); anything else must be https. */
function secureUrl(what: string) {
  return z.string().superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: `must be an absolute URL (${what})` });
      return;
    }
    if (url.protocol === 'https:') return;
    if (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname)) return;
    ctx.addIssue({ code: 'custom', message: `must be an https URL (${what}); http is allowed only for loopback addresses` });
  });
}

const int = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `must be a whole number from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().min(min, `must be a whole number from ${min} to ${max}`).max(max, `must be a whole number from ${min} to ${max}`));

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const list = z.string().transform((v) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);

/** NCRONTAB with seconds, as Azure Functions timers use: six fields. */
const ncrontab = z.string().regex(/^\s*(\S+\s+){5}\S+\s*$/, 'must be a six-field NCRONTAB expression such as "0 */5 * * * *"');

export const SETTINGS: SettingDoc[] = [
  {
    name: 'OPENEMR_BASE_URL',
    required: true,
    description:
      'OpenEMR server root, e.g. https://emr.example.org (the FHIR base is {root}/apis/{site}/fhir, the token URL {root}/oauth2/{site}/token).',
  },
  { name: 'OPENEMR_SITE', required: false, default: 'default', description: 'OpenEMR site name used in the API and OAuth2 paths.' },
  { name: 'OPENEMR_CLIENT_ID', required: true, description: 'Client id registered in OpenEMR (npm run openemr:register prints it).' },
  {
    name: 'OPENEMR_PRIVATE_KEY',
    required: false,
    secret: true,
    description:
      'Private key that signs the RS384 client assertion, as PEM (PKCS#8) or JWK JSON. In Azure a Key Vault reference. Either this or OPENEMR_PRIVATE_KEY_SECRET_URI is required.',
  },
  {
    name: 'OPENEMR_PRIVATE_KEY_SECRET_URI',
    required: false,
    description:
      'Key Vault secret URI holding the private key, read at start-up with the managed identity (alternative to a Key Vault reference in OPENEMR_PRIVATE_KEY).',
  },
  {
    name: 'OPENEMR_KEY_ID',
    required: false,
    description:
      'kid header of the client assertion (OpenEMR uses the first key of the registered JWKS; set it when the JWKS has several).',
  },
  {
    name: 'OPENEMR_SCOPES',
    required: false,
    description: `Scopes requested with each token (SMART v1 .read or v2 .rs); they must include a read scope for every SYNC_RESOURCE_TYPES type. Unset: the v1 read scope of each SYNC_RESOURCE_TYPES type, then ${OPTIONAL_SCOPES.join(' ')}. The bulk export scopes make large gaps cheaper; OpenEMR drops scopes the client lacks, and the connector then reads by search.`,
  },
  {
    name: 'OPENEMR_CLIENT_SECRET',
    required: false,
    secret: true,
    description:
      'Not supported: OpenEMR accepts only a signed JWT assertion for client_credentials. Setting it without a private key stops start-up with an explanation.',
  },
  {
    name: 'OPENEMR_READ_CONCURRENCY',
    required: false,
    default: '3',
    description: 'Concurrent reads against OpenEMR (a production EHR: keep it gentle).',
  },
  { name: 'OPENEMR_PAGE_SIZE', required: false, default: '200', description: 'Patient page size (_count); OpenEMR caps it at 200.' },
  { name: 'AHDS_FHIR_URL', required: true, description: 'FHIR service URL, e.g. https://<workspace>-<fhir>.fhir.azurehealthcareapis.com.' },
  { name: 'AHDS_AUDIENCE', required: false, description: 'Token audience for the FHIR service; defaults to AHDS_FHIR_URL.' },
  {
    name: 'AZURE_AUTH_MODE',
    required: false,
    default: 'managed-identity',
    description: 'How the connector gets Entra ID tokens for AHDS: managed-identity, default (DefaultAzureCredential) or client-secret.',
  },
  {
    name: 'AZURE_CLIENT_ID',
    required: false,
    description: 'Client id of the user-assigned managed identity (managed-identity mode) or of the app registration (client-secret mode).',
  },
  { name: 'AZURE_TENANT_ID', required: false, description: 'Entra tenant id (client-secret mode).' },
  { name: 'AZURE_CLIENT_SECRET', required: false, secret: true, description: 'App registration secret (client-secret mode only).' },
  {
    name: 'AZURE_AUTHORITY_HOST',
    required: false,
    description: 'Entra authority host, e.g. https://login.microsoftonline.com (sovereign clouds or the local stack).',
  },
  {
    name: 'AZURE_DISABLE_INSTANCE_DISCOVERY',
    required: false,
    default: 'false',
    description: 'Skip Entra instance discovery (needed for the local stack and private authorities).',
  },
  { name: 'AHDS_BATCH_SIZE', required: false, default: '200', description: 'Entries per batch bundle written to AHDS (1-500).' },
  {
    name: 'AHDS_MAX_CONCURRENCY',
    required: false,
    default: '32',
    description: 'Ceiling of concurrent batch requests to AHDS; the adaptive limiter ramps up to it and backs off on 429.',
  },
  { name: 'AHDS_INITIAL_CONCURRENCY', required: false, default: '2', description: 'Concurrent batch requests at the start of a run.' },
  { name: 'HTTP_TIMEOUT_MS', required: false, default: '30000', description: 'Timeout of one HTTP request to either side.' },
  {
    name: 'RETRY_MAX_ATTEMPTS',
    required: false,
    default: '6',
    description: 'Attempts per request, the first included, for 408/429/5xx and network errors.',
  },
  { name: 'RETRY_BASE_DELAY_MS', required: false, default: '500', description: 'Base of the exponential backoff (full jitter).' },
  {
    name: 'RETRY_MAX_DELAY_MS',
    required: false,
    default: '30000',
    description: 'Longest single wait, Retry-After included (clamped to it).',
  },
  { name: 'RETRY_MAX_TOTAL_MS', required: false, default: '120000', description: 'Longest total time spent retrying one request.' },
  {
    name: 'AzureWebJobsStorage',
    required: false,
    description: 'Storage connection string (local: Azurite). In Azure use identity-based AzureWebJobsStorage__accountName instead.',
  },
  {
    name: 'AzureWebJobsStorage__accountName',
    required: false,
    description: 'Storage account for watermarks, leases, dead letters and the work queue, reached with the managed identity.',
  },
  { name: 'SYNC_SCHEDULE', required: false, default: '0 */5 * * * *', description: 'NCRONTAB schedule of the incremental sync timer.' },
  { name: 'RECONCILE_SCHEDULE', required: false, default: '0 30 2 * * *', description: 'NCRONTAB schedule of the reconciliation timer.' },
  {
    name: 'SYNC_LAG_SECONDS',
    required: false,
    default: '60',
    description: 'The upper bound of a window stays this far behind now, so late commits in OpenEMR are not missed.',
  },
  {
    name: 'SYNC_OVERLAP_SECONDS',
    required: false,
    default: '300',
    description: 'Each window starts this far before the previous upper bound (clock skew, one-second precision).',
  },
  {
    name: 'SYNC_INITIAL_SINCE',
    required: false,
    default: '1970-01-01T00:00:00Z',
    description: 'Lower bound of the first incremental window when no watermark exists.',
  },
  {
    name: 'SYNC_LEASE_SECONDS',
    required: false,
    default: '120',
    description: 'Lease that keeps a second runner off a window; a crashed holder blocks for at most this long.',
  },
  {
    name: 'SYNC_TABLE_PREFIX',
    required: false,
    default: 'fhirsync',
    description: 'Prefix of the Azure tables holding watermarks, leases and dead letters.',
  },
  {
    name: 'SYNC_QUEUE_NAME',
    required: false,
    default: 'fhirsync-work',
    description: 'Azure Storage queue for scale-out backfill work items.',
  },
  {
    name: 'RECONCILE_DELETE_MODE',
    required: false,
    default: 'report-only',
    description: 'What reconciliation does with resources deleted in OpenEMR: report-only or delete (in AHDS).',
  },
  {
    name: 'AUDIT_TRAIL',
    required: false,
    default: 'off',
    description:
      'What the connector records of its writes in the target: off, per-run (a Provenance per written bundle and AuditEvents per run) or per-resource (a Provenance per written resource and AuditEvents per run).',
  },
  {
    name: 'MAPPING_CONCEPTMAP_FILES',
    required: false,
    description: 'Comma-separated paths of extra FHIR ConceptMap JSON files, applied after the shipped maps.',
  },
  {
    name: 'MAPPING_LOCAL_CODE_SYSTEM',
    required: false,
    default: 'urn:openemr:local-code',
    description: 'System given to codes labelled LOINC that are not valid LOINC and no map covers.',
  },
  {
    name: 'MAPPING_UNCARRIED_REFERENCES',
    required: false,
    default: 'keep',
    description: 'References to resource types the sync does not carry (Encounter, ...): keep or drop.',
  },
  {
    name: 'PRIVACY_DROP_IDENTIFIER_SYSTEMS',
    required: false,
    default: 'http://hl7.org/fhir/sid/us-ssn',
    description: 'Comma-separated identifier systems removed before anything leaves the connector.',
  },
  {
    name: 'DEID_MODE',
    required: false,
    default: 'off',
    description: 'on: de-identify for research targets (no names, addresses, telecom; shifted dates; hashed ids).',
  },
  {
    name: 'DEID_KEY',
    required: false,
    secret: true,
    description: 'Secret key for de-identification (date shifts and id hashes); required when DEID_MODE=on, at least 32 characters.',
  },
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING',
    required: false,
    secret: true,
    description: 'Application Insights connection string; telemetry is off when empty.',
  },
  {
    name: 'OPENEMR_EXPORT',
    required: false,
    default: 'true',
    description:
      'Use OpenEMR bulk $export for the first run, --full, long gaps and reconciliation (false: searches only). An export that fails or is incomplete always falls back to searches.',
  },
  {
    name: 'OPENEMR_EXPORT_KICKOFF_TIMEOUT_MS',
    required: false,
    default: '180000',
    description:
      'Timeout of the $export kick-off, which OpenEMR answers only after writing the whole export (up to its 2-minute budget); at least 150000. Never retried.',
  },
  {
    name: 'OPENEMR_EXPORT_DOWNLOAD_TIMEOUT_MS',
    required: false,
    default: '1800000',
    description: 'Longest total time one export file may take to download (a pause while AHDS throttles does not count as idle).',
  },
  {
    name: 'OPENEMR_EXPORT_GAP_SECONDS',
    required: false,
    default: '86400',
    description:
      'Windows longer than this (and the first run, --full, reconciliation) are read by $export rather than searches; keep it at most OPENEMR_OBSERVATION_SPAN_SECONDS so a long gap never becomes one search per Patient.',
  },
  {
    name: 'RECONCILE_SOURCE',
    required: false,
    default: 'search',
    description:
      "How reconciliation reads OpenEMR: search (every Patient, then each one's Observations: also finds rows whose date column is NULL, which no _lastUpdated search and no export returns) or export (a few requests; misses those rows).",
  },
  {
    name: 'OPENEMR_OBSERVATION_SPAN_SECONDS',
    required: false,
    default: '86400',
    description:
      'Observation windows up to this long are read with one _lastUpdated=ge search; longer ones (export off or failed) are read per Patient.',
  },
  {
    name: 'AHDS_BUNDLE_TIMEOUT_MS',
    required: false,
    default: '120000',
    description:
      'Timeout of one bundle request to AHDS; keep it above the 100 s AHDS may work on a bundle, so a bundle is never sent again while a copy still runs.',
  },
  {
    name: 'AHDS_SERVER_TIME_LIMIT_MS',
    required: false,
    default: '100000',
    description:
      'How long AHDS may still work on a bundle after it was sent (AHDS: 100 s); a bundle whose answer never came is sent again only after this.',
  },
  {
    name: 'MAPPING_VALIDATION',
    required: false,
    default: 'ahds',
    description:
      "ahds: refuse what AHDS refuses (parse errors, the resource's own cardinality and formats) plus codes outside the required value sets the connector maps; strict: also everything a full FHIR validator refuses (nested cardinality, invariants).",
  },
  {
    name: 'AHDS_APP_MAX_BUNDLES',
    required: false,
    default: '64',
    description:
      'Ceiling of bundles in flight toward AHDS for the whole app (timer, HTTP runs and every queue worker on every instance), held in Table storage; 0 turns it off. Microsoft warns that past about 100 concurrent bundles AHDS may get slower.',
  },
  {
    name: 'AHDS_CONFLICT_RETRIES',
    required: false,
    default: '3',
    description: 'Resubmissions of a resource AHDS answered 409/412 (a concurrent update of it) before it is dead-lettered.',
  },
  {
    name: 'TARGET_KIND',
    required: false,
    default: 'ahds',
    description:
      'What the connector writes to: ahds (Azure Health Data Services, every AHDS behaviour) or fhir (any FHIR R4 server; the writer adapts to its CapabilityStatement).',
  },
  {
    name: 'TARGET_FHIR_URL',
    required: false,
    description: 'FHIR base URL of the target; takes the place of AHDS_FHIR_URL (which stays accepted). One of the two is required.',
  },
  {
    name: 'TARGET_AUTH',
    required: false,
    description:
      'How the connector authenticates to the target: entra (Entra ID tokens, the AZURE_* settings; default for ahds), smart-backend (SMART Backend Services, a signed JWT assertion), client-secret (client_credentials with a secret) or none (loopback and private networks only). Required when TARGET_KIND is fhir.',
  },
  {
    name: 'TARGET_TOKEN_URL',
    required: false,
    description:
      'Token endpoint for smart-backend and client-secret; when empty it is read from {TARGET_FHIR_URL}/.well-known/smart-configuration.',
  },
  {
    name: 'TARGET_CLIENT_ID',
    required: false,
    description: 'Client id at the target authorization server (smart-backend and client-secret).',
  },
  {
    name: 'TARGET_CLIENT_SECRET',
    required: false,
    secret: true,
    description: 'Client secret (client-secret mode), sent with HTTP Basic authentication.',
  },
  {
    name: 'TARGET_PRIVATE_KEY',
    required: false,
    secret: true,
    description:
      'Private key signing the SMART client assertion (smart-backend), PEM or JWK JSON: an RSA key signs RS384, an EC P-384 key ES384.',
  },
  {
    name: 'TARGET_KEY_ID',
    required: false,
    description: 'kid of the SMART client assertion: the key id in the JWKS registered with the target (required for smart-backend).',
  },
  {
    name: 'TARGET_SCOPES',
    required: false,
    default: 'system/*.read system/*.write',
    description: 'Scopes requested from the target authorization server (smart-backend and client-secret).',
  },
  {
    name: 'MAPPING_PROFILE_CLAIMS',
    required: false,
    default: 'keep',
    description:
      'keep: meta.profile names the US Core profiles a resource was checked against; drop: no profile claims, for a target that does not hold those profiles (HAPI FHIR without US Core refuses a resource claiming an unknown profile).',
  },
  {
    name: 'TARGET_BUNDLES',
    required: false,
    default: 'auto',
    description:
      'How writes are grouped: auto (batch bundles when the CapabilityStatement offers batch, or the server is HAPI FHIR, which accepts batch without listing it; otherwise one PUT per resource), batch, or single.',
  },
  {
    name: 'SYNC_RESOURCE_TYPES',
    required: false,
    default: DEFAULT_RESOURCE_TYPES,
    description: `Comma-separated resource types to carry (${KNOWN_RESOURCE_TYPES.join(', ')}; Patient always), written in reference order (README, Resource types). The OpenEMR client needs a read scope for each.`,
  },
];

const envSchema = z.object({
  OPENEMR_BASE_URL: secureUrl('OpenEMR server root'),
  OPENEMR_SITE: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'must be a site name of letters, digits, - or _')
    .default('default'),
  OPENEMR_CLIENT_ID: z.string().min(1, 'must not be empty'),
  OPENEMR_PRIVATE_KEY: z.string().optional(),
  OPENEMR_PRIVATE_KEY_SECRET_URI: secureUrl('Key Vault secret URI').optional(),
  OPENEMR_KEY_ID: z.string().optional(),
  /** Unset: derived from SYNC_RESOURCE_TYPES (load.ts). */
  OPENEMR_SCOPES: z.string().optional(),
  OPENEMR_CLIENT_SECRET: z.string().optional(),
  OPENEMR_READ_CONCURRENCY: int(1, 32).default(3),
  OPENEMR_PAGE_SIZE: int(1, 200).default(200),
  AHDS_FHIR_URL: secureUrl('FHIR service URL').optional(),
  AHDS_AUDIENCE: z.string().optional(),
  AZURE_AUTH_MODE: z
    .enum(['managed-identity', 'default', 'client-secret'], { message: 'must be managed-identity, default or client-secret' })
    .default('managed-identity'),
  AZURE_CLIENT_ID: z.string().optional(),
  AZURE_TENANT_ID: z.string().optional(),
  AZURE_CLIENT_SECRET: z.string().optional(),
  AZURE_AUTHORITY_HOST: secureUrl('Entra authority host').optional(),
  AZURE_DISABLE_INSTANCE_DISCOVERY: bool.default(false),
  AHDS_BATCH_SIZE: int(1, 500).default(200),
  AHDS_MAX_CONCURRENCY: int(1, 256).default(32),
  AHDS_INITIAL_CONCURRENCY: int(1, 256).default(2),
  HTTP_TIMEOUT_MS: int(100, 600000).default(30000),
  RETRY_MAX_ATTEMPTS: int(1, 20).default(6),
  RETRY_BASE_DELAY_MS: int(0, 60000).default(500),
  RETRY_MAX_DELAY_MS: int(0, 600000).default(30000),
  RETRY_MAX_TOTAL_MS: int(0, 3600000).default(120000),
  AzureWebJobsStorage: z.string().optional(),
  AzureWebJobsStorage__accountName: z
    .string()
    .regex(/^[a-z0-9]{3,24}$/, 'must be a storage account name (3-24 lower-case letters and digits)')
    .optional(),
  SYNC_SCHEDULE: ncrontab.default('0 */5 * * * *'),
  RECONCILE_SCHEDULE: ncrontab.default('0 30 2 * * *'),
  SYNC_LAG_SECONDS: int(0, 86400).default(60),
  SYNC_OVERLAP_SECONDS: int(0, 86400).default(300),
  SYNC_INITIAL_SINCE: z
    .string()
    .refine(
      (v) => parseInstant(v) !== undefined,
      'must be an ISO 8601 date (2025-01-01) or date-time with a zone (2025-01-01T00:00:00Z), a real calendar day',
    )
    .default('1970-01-01T00:00:00Z'),
  SYNC_LEASE_SECONDS: int(15, 3600).default(120),
  SYNC_TABLE_PREFIX: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9]{0,40}$/, 'must be letters and digits, starting with a letter')
    .default('fhirsync'),
  SYNC_QUEUE_NAME: z
    .string()
    .regex(/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/, 'must be a valid queue name (3-63 lower-case letters, digits and single hyphens)')
    .default('fhirsync-work'),
  RECONCILE_DELETE_MODE: z.enum(['report-only', 'delete'], { message: 'must be report-only or delete' }).default('report-only'),
  AUDIT_TRAIL: z.enum(['off', 'per-run', 'per-resource'], { message: 'must be off, per-run or per-resource' }).default('off'),
  MAPPING_CONCEPTMAP_FILES: list.optional(),
  MAPPING_LOCAL_CODE_SYSTEM: z.string().min(1).default('urn:openemr:local-code'),
  MAPPING_UNCARRIED_REFERENCES: z.enum(['keep', 'drop'], { message: 'must be keep or drop' }).default('keep'),
  PRIVACY_DROP_IDENTIFIER_SYSTEMS: list.default(['http://hl7.org/fhir/sid/us-ssn']),
  DEID_MODE: z.enum(['off', 'on'], { message: 'must be on or off' }).default('off'),
  DEID_KEY: z.string().optional(),
  APPLICATIONINSIGHTS_CONNECTION_STRING: z.string().optional(),
  OPENEMR_EXPORT: bool.default(true),
  OPENEMR_EXPORT_KICKOFF_TIMEOUT_MS: int(150000, 3600000).default(180000),
  OPENEMR_EXPORT_DOWNLOAD_TIMEOUT_MS: int(1000, 86400000).default(1800000),
  OPENEMR_EXPORT_GAP_SECONDS: int(0, 31536000).default(86400),
  OPENEMR_OBSERVATION_SPAN_SECONDS: int(1, 31536000).default(86400),
  RECONCILE_SOURCE: z.enum(['search', 'export'], { message: 'must be search or export' }).default('search'),
  AHDS_BUNDLE_TIMEOUT_MS: int(1000, 600000).default(120000),
  AHDS_CONFLICT_RETRIES: int(0, 10).default(3),
  AHDS_SERVER_TIME_LIMIT_MS: int(0, 600000).default(100000),
  AHDS_APP_MAX_BUNDLES: int(0, 1000).default(64),
  MAPPING_VALIDATION: z.enum(['ahds', 'strict'], { message: 'must be ahds or strict' }).default('ahds'),
  TARGET_KIND: z.enum(['ahds', 'fhir'], { message: 'must be ahds or fhir' }).default('ahds'),
  TARGET_FHIR_URL: secureUrl('target FHIR base URL').optional(),
  TARGET_AUTH: z
    .enum(['entra', 'smart-backend', 'client-secret', 'none'], { message: 'must be entra, smart-backend, client-secret or none' })
    .optional(),
  TARGET_TOKEN_URL: secureUrl('target token endpoint').optional(),
  TARGET_CLIENT_ID: z.string().optional(),
  TARGET_CLIENT_SECRET: z.string().optional(),
  TARGET_PRIVATE_KEY: z.string().optional(),
  TARGET_KEY_ID: z.string().optional(),
  TARGET_SCOPES: z.string().default('system/*.read system/*.write'),
  MAPPING_PROFILE_CLAIMS: z.enum(['keep', 'drop'], { message: 'must be keep or drop' }).default('keep'),
  TARGET_BUNDLES: z.enum(['auto', 'batch', 'single'], { message: 'must be auto, batch or single' }).default('auto'),
  SYNC_RESOURCE_TYPES: list.default(DEFAULT_RESOURCE_TYPES.split(',')).superRefine((types, ctx) => {
    const problem = resourceTypesProblem(types);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }),
});

export type RawSettings = z.infer<typeof envSchema>;
export { envSchema };
