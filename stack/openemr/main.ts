/**
 * Runs the OpenEMR stand-in on its own: `node dist/stack/openemr/main.js [dataDir]`.
 * Env: OPENEMR_STANDIN_PORT (default 0 = any free port), OPENEMR_STANDIN_DATA (data directory),
 * OPENEMR_STANDIN_VERSION (7.0.2, 7.0.3, 7.0.4 or master), OPENEMR_STANDIN_SITE_ADDR_OATH,
 * OPENEMR_STANDIN_DIRECTORY (Practitioner/Organization/Location folder; default data/openemr-directory
 * with the sample data, else none; `none`: none).
 * Prints the URLs and the default client's id and private key, then serves until interrupted.
 */
import { isOpenEmrVersion, OPENEMR_VERSIONS, startOpenEmrStandIn } from './index';

/** OPENEMR_STANDIN_DIRECTORY as the directoryDir option: unset is the default, `none` none. */
function directoryOption(value: string | undefined): { directoryDir?: string | null } {
  if (!value) return {};
  return { directoryDir: value === 'none' ? null : value };
}

async function main(): Promise<void> {
  const version = process.env.OPENEMR_STANDIN_VERSION;
  if (version !== undefined && !isOpenEmrVersion(version))
    throw new Error(`OPENEMR_STANDIN_VERSION must be one of ${OPENEMR_VERSIONS.join(', ')}`);
  const standIn = await startOpenEmrStandIn({
    port: Number(process.env.OPENEMR_STANDIN_PORT ?? 0),
    dataDir: process.argv[2],
    version,
    siteAddrOath: process.env.OPENEMR_STANDIN_SITE_ADDR_OATH,
    ...directoryOption(process.env.OPENEMR_STANDIN_DIRECTORY),
  });
  process.stdout.write(
    JSON.stringify(
      {
        version: standIn.version,
        fhirBaseUrl: standIn.fhirBaseUrl,
        tokenUrl: standIn.tokenUrl,
        controlUrl: `${standIn.baseUrl}/_control`,
        clientId: standIn.client.clientId,
        scopes: standIn.client.scopes,
        loaded: standIn.loadReport?.loaded,
      },
      null,
      2,
    ) +
      '\n' +
      standIn.client.privateKeyPem,
  );
  const stop = () => void standIn.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
