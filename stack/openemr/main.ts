/**
 * Runs the OpenEMR stand-in on its own: `node dist/stack/openemr/main.js [dataDir]`.
 * Env: OPENEMR_STANDIN_PORT (default 0 = any free port), OPENEMR_STANDIN_DATA (data directory).
 * Prints the URLs and the default client's id and private key, then serves until interrupted.
 */
import { startOpenEmrStandIn } from './index';

async function main(): Promise<void> {
  const standIn = await startOpenEmrStandIn({
    port: Number(process.env.OPENEMR_STANDIN_PORT ?? 0),
    dataDir: process.argv[2],
  });
  process.stdout.write(
    JSON.stringify(
      {
        fhirBaseUrl: standIn.fhirBaseUrl,
        tokenUrl: standIn.tokenUrl,
        controlUrl: `${standIn.baseUrl}/_control`,
        clientId: standIn.client.clientId,
        scopes: standIn.client.scopes,
        loaded: standIn.loadReport?.loaded,
      },
      null,
      2,
    ) + '\n' + standIn.client.privateKeyPem,
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
