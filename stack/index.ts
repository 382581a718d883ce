import type { FaultProfile } from './faults';
import { startAhdsStandIn, type AhdsStandIn } from './ahds';
import { startAzurite, type AzuriteHandle } from './azurite';
import { startEntraStandIn, type EntraStandIn } from './entra';
import { startOpenEmrStandIn, type OpenEmrStandIn, type OpenEmrStandInOptions } from './openemr';
import { startHapiServer, type HapiServer, type HapiServerOptions } from './hapi';

export interface StackOptions {
  /** Bulk FHIR NDJSON directory for OpenEMR (default: the shared synthetic data); null starts empty. */
  dataDir?: string | null;
  openemrFaults?: FaultProfile;
  ahdsFaults?: FaultProfile;
  /** OpenEMR token lifetime in seconds (default 300, as OpenEMR). */
  openemrTokenLifetimeSeconds?: number;
  /** Start Azurite too (default true). */
  azurite?: boolean;
  openemr?: Omit<OpenEmrStandInOptions, 'dataDir' | 'faults' | 'tokenLifetimeSeconds'>;
  /** Settings added to (or overriding) the connector settings of `env`. */
  settings?: Record<string, string>;
  /** What the connector writes to: the AHDS stand-in (default) or a real HAPI FHIR server (needs Java and Maven). */
  target?: 'ahds' | 'hapi';
  hapi?: HapiServerOptions;
}

export interface Stack {
  openemr: OpenEmrStandIn;
  ahds: AhdsStandIn;
  entra: EntraStandIn;
  azurite?: AzuriteHandle;
  /** The HAPI FHIR server, when the stack was started with target 'hapi'. */
  hapi?: HapiServer;
  /** App settings that point the connector at this stack, as loadConfig reads them. */
  env: Record<string, string>;
  close(): Promise<void>;
}

/**
 * The local stack: an OpenEMR stand-in, an AHDS stand-in with its Entra token endpoint, and
 * Azurite, all on loopback with free ports. Tests, the demo, the benchmark and `npm run stack`
 * all start it through here.
 */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const started: Array<{ close(): Promise<void> }> = [];
  try {
    const entra = await startEntraStandIn();
    started.push(entra);
    const ahds = await startAhdsStandIn({ entra, faults: options.ahdsFaults });
    started.push(ahds);
    const openemr = await startOpenEmrStandIn({
      ...options.openemr,
      dataDir: options.dataDir,
      faults: options.openemrFaults,
      tokenLifetimeSeconds: options.openemrTokenLifetimeSeconds,
    });
    started.push(openemr);
    const azurite = options.azurite === false ? undefined : await startAzurite();
    if (azurite) started.push(azurite);
    const hapi = options.target === 'hapi' ? await startHapiServer(options.hapi) : undefined;
    if (hapi) started.push(hapi);
    const env = connectorSettings({
      openemr: {
        baseUrl: openemr.baseUrl,
        site: openemr.site,
        clientId: openemr.client.clientId,
        privateKeyPem: openemr.client.privateKeyPem,
      },
      ahds,
      entra,
      storageConnectionString: azurite?.connectionString,
      extra: { ...(hapi ? hapiTargetSettings(hapi) : {}), ...options.settings },
    });
    return {
      openemr,
      ahds,
      entra,
      azurite,
      hapi,
      env,
      close: async () => {
        for (const s of started.reverse()) await s.close().catch(() => undefined);
      },
    };
  } catch (error) {
    for (const s of started.reverse()) await s.close().catch(() => undefined);
    throw error;
  }
}

/** Settings that point the connector at a HAPI FHIR server on loopback (no auth there: TARGET_AUTH=none). */
export function hapiTargetSettings(hapi: { fhirUrl: string }): Record<string, string> {
  return {
    TARGET_KIND: 'fhir',
    TARGET_FHIR_URL: hapi.fhirUrl,
    TARGET_AUTH: 'none',
    MAPPING_UNCARRIED_REFERENCES: 'drop',
    MAPPING_PROFILE_CLAIMS: 'drop',
  };
}

/** Without storage nothing may touch it: an unroutable account makes any attempt loud. */
const NO_STORAGE =
  'DefaultEndpointsProtocol=http;AccountName=none;AccountKey=bm9uZQ==;TableEndpoint=http://127.0.0.1:9/none;QueueEndpoint=http://127.0.0.1:9/none;BlobEndpoint=http://127.0.0.1:9/none';

/** App settings that point the connector at local stand-ins, as loadConfig reads them. */
export function connectorSettings(parts: {
  openemr: { baseUrl: string; site: string; clientId: string; privateKeyPem: string };
  ahds: { fhirUrl: string };
  entra: { tenantId: string; clientId: string; clientSecret: string; authorityHost: string };
  storageConnectionString?: string;
  extra?: Record<string, string>;
}): Record<string, string> {
  return {
    OPENEMR_BASE_URL: parts.openemr.baseUrl,
    OPENEMR_SITE: parts.openemr.site,
    OPENEMR_CLIENT_ID: parts.openemr.clientId,
    OPENEMR_PRIVATE_KEY: parts.openemr.privateKeyPem,
    AHDS_FHIR_URL: parts.ahds.fhirUrl,
    AZURE_AUTH_MODE: 'client-secret',
    AZURE_TENANT_ID: parts.entra.tenantId,
    AZURE_CLIENT_ID: parts.entra.clientId,
    AZURE_CLIENT_SECRET: parts.entra.clientSecret,
    AZURE_AUTHORITY_HOST: parts.entra.authorityHost,
    AZURE_DISABLE_INSTANCE_DISCOVERY: 'true',
    AzureWebJobsStorage: parts.storageConnectionString ?? NO_STORAGE,
    ...parts.extra,
  };
}
