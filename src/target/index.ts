import type { TokenCredential } from '@azure/identity';
import type { BundleBudget } from '../ahds/bundle-budget';
import { CredentialTokenSource } from '../ahds/credential';
import { AhdsWriter, createAhdsWriter, targetName } from '../ahds/writer';
import type { Config } from '../config/load';
import { createHttpClient, type TokenSource } from '../http/client';
import { UpstreamError } from '../http/errors';
import { DEPENDENCIES } from '../telemetry/names';
import type { Telemetry } from '../telemetry/telemetry';
import { noAuthWarning, OAuthTokenSource } from './auth';
import { fetchCapabilities, missingCapabilities, planWrites, type TargetCapabilities, type WritePlan } from './capabilities';

export type { TargetConfig } from './config';

/**
 * HAPI FHIR stamps meta.source with its request id ("#...") on every write; the connector never sets
 * it, so what it reads back from a generic target is compared without it (reconciliation's hashes).
 */
export function withoutStampedSource<T extends Record<string, unknown>>(resource: T): T {
  const meta = resource.meta as Record<string, unknown> | undefined;
  if (!meta || typeof meta.source !== 'string' || !meta.source.startsWith('#')) return resource;
  const { source: _s, ...rest } = meta;
  return { ...resource, meta: rest };
}

/** The writer for a generic FHIR target: reads give back resources without HAPI's stamped meta.source. */
class FhirTargetWriter extends AhdsWriter {
  override async read(resourceType: string, id: string): Promise<Record<string, unknown> | undefined> {
    const resource = await super.read(resourceType, id);
    return resource && withoutStampedSource(resource);
  }

  override async *search(resourceType: string, params: Record<string, string>): AsyncGenerator<Array<Record<string, unknown>>> {
    for await (const page of super.search(resourceType, params)) yield page.map(withoutStampedSource);
  }
}

export interface TargetWriter {
  writer: AhdsWriter;
  /** For TARGET_KIND=fhir: what /metadata said and how writes are grouped because of it. */
  capabilities?: TargetCapabilities;
  plan?: WritePlan;
}

/** The bearer tokens TARGET_AUTH asks for; undefined for none (after the loud warning). */
export function targetTokenSource(
  config: Config,
  getCredential: () => TokenCredential,
  warn: (line: string) => void = console.warn,
): TokenSource | undefined {
  const { target } = config;
  switch (target.auth.mode) {
    case 'entra':
      return new CredentialTokenSource(getCredential(), config.ahds.audience);
    case 'none':
      warn(noAuthWarning(target.fhirUrl));
      return undefined;
    default:
      return new OAuthTokenSource(target.auth, target.fhirUrl, { timeoutMs: config.http.timeoutMs });
  }
}

/**
 * The writer for the configured target. AHDS (the default kind) gets the AHDS writer exactly as
 * before. A generic FHIR R4 server is asked for its CapabilityStatement first: the writer sends batch
 * bundles only where they are accepted, and none of AHDS's headers; a server that cannot take
 * PUT-creates of a carried type (SYNC_RESOURCE_TYPES) stops start-up saying why.
 */
export async function createTargetWriter(
  config: Config,
  telemetry: Telemetry,
  getCredential: () => TokenCredential,
  options: { budget?: BundleBudget; warn?: (line: string) => void } = {},
): Promise<TargetWriter> {
  const auth = targetTokenSource(config, getCredential, options.warn);
  if (config.target.kind === 'ahds')
    return {
      writer: createAhdsWriter(config.ahds, config.http, auth as TokenSource, telemetry, {
        budget: options.budget,
        // Only the types this connector writes: a policy on a type it never touches is no reason to refuse.
        checkTypes: config.sync.resourceTypes,
      }),
    };
  const http = createHttpClient({
    side: 'ahds',
    baseURL: config.target.fhirUrl,
    timeoutMs: config.http.timeoutMs,
    retry: config.http.retry,
    telemetry,
    dependencyName: DEPENDENCIES.ahds,
    name: targetName('fhir'),
    auth,
    // HAPI FHIR answers a repeated search from its result cache for a minute: reconciliation must see now.
    headers: { Accept: 'application/fhir+json', 'Cache-Control': 'no-cache' },
  });
  const capabilities = await fetchCapabilities(http);
  // The types the sync writes (SYNC_RESOURCE_TYPES): the target must take PUT-creates and updates of
  // each; with the audit trail on, also the Provenance and AuditEvents it writes.
  const written = config.audit.mode === 'off' ? config.sync.resourceTypes : [...config.sync.resourceTypes, 'Provenance', 'AuditEvent'];
  const missing = missingCapabilities(capabilities, written);
  if (missing.length > 0)
    throw new UpstreamError('ahds', 'Failed', `The target FHIR server cannot take what the connector writes: ${missing.join('; ')}.`);
  const plan = planWrites(capabilities, config.target.bundles);
  const writer = new FhirTargetWriter({
    http,
    batchSize: config.ahds.batchSize,
    maxConcurrency: config.ahds.maxConcurrency,
    initialConcurrency: config.ahds.initialConcurrency,
    retry: config.http.retry,
    bundleTimeoutMs: config.ahds.bundleTimeoutMs,
    conflictRetries: config.ahds.conflictRetries,
    // None of AHDS's headers: a generic server processes a batch its own way and keeps its own audit.
    auditHeader: undefined,
    bundleHeaders: {},
    bundleMode: plan.bundles,
    budget: options.budget,
    fullUrlBase: config.target.fhirUrl,
    telemetry,
    targetName: targetName('fhir'),
  });
  return { writer, capabilities, plan };
}
