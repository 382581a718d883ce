import type { FaultProfile } from './faults';
import { startAhdsStandIn, type AhdsStandIn } from './ahds';
import { startAzurite, type AzuriteHandle } from './azurite';
import { startEntraStandIn, type EntraStandIn } from './entra';
import { startOpenEmrStandIn, type OpenEmrStandIn, type OpenEmrStandInOptions } from './openemr';

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
}

export interface Stack {
  openemr: OpenEmrStandIn;
  ahds: AhdsStandIn;
  entra: EntraStandIn;
  azurite?: AzuriteHandle;
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
    const env: Record<string, string> = {
      OPENEMR_BASE_URL: openemr.baseUrl,
      OPENEMR_SITE: openemr.site,
      OPENEMR_CLIENT_ID: openemr.client.clientId,
      OPENEMR_PRIVATE_KEY: openemr.client.privateKeyPem,
      AHDS_FHIR_URL: ahds.fhirUrl,
      AZURE_AUTH_MODE: 'client-secret',
      AZURE_TENANT_ID: entra.tenantId,
      AZURE_CLIENT_ID: entra.clientId,
      AZURE_CLIENT_SECRET: entra.clientSecret,
      AZURE_AUTHORITY_HOST: entra.authorityHost,
      AZURE_DISABLE_INSTANCE_DISCOVERY: 'true',
      // Without Azurite nothing may touch storage; an unroutable account makes that loud.
      AzureWebJobsStorage: azurite?.connectionString ?? 'DefaultEndpointsProtocol=http;AccountName=none;AccountKey=bm9uZQ==;TableEndpoint=http://127.0.0.1:9/none;QueueEndpoint=http://127.0.0.1:9/none;BlobEndpoint=http://127.0.0.1:9/none',
      ...options.settings,
    };
    return {
      openemr,
      ahds,
      entra,
      azurite,
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
