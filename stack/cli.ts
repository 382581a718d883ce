import fs from 'node:fs';
import path from 'node:path';
import { startStack, type Stack } from './index';
import { startFunctionsHost } from './functions-host';
import { findRepoRoot } from './openemr/repo-paths';
import { commandLine } from '../src/cli/args';
import { writePrivateFile } from '../src/cli/private-file';

/**
 * `npm run stack`: the whole local stack plus the connector's HTTP functions, up until Ctrl-C.
 * Prints the URLs, the OpenEMR client id with its key file, and curl lines that work as printed.
 */
export const USAGE = `Usage: npm run stack -- [--data DIR] [--directory DIR] [--target ahds|hapi]

Starts the local stack (OpenEMR and AHDS stand-ins, Entra token endpoint, Azurite) and the
connector's functions (HTTP on a local port, the queue worker on Azurite) until Ctrl-C, and writes
.stack/local.settings.json with every setting pointing at it.

  --data DIR     Bulk FHIR NDJSON directory to load into the OpenEMR stand-in (default data/synthea-dev)
  --directory DIR  Practitioners, Organizations and Locations to serve beside the data, linked from its
                 Encounters (default data/openemr-directory with data/synthea-dev, else none; 'none': none)
  --target KIND  ahds (default): the AHDS stand-in; hapi: also a real HAPI FHIR JPA server (needs Java 17
                 and Maven; the first start builds it), and the connector writes to it
  --help         this text`;

async function main(): Promise<void> {
  const args = commandLine(
    process.argv.slice(2),
    { data: { type: 'string' }, directory: { type: 'string' }, target: { type: 'string', default: 'ahds' } },
    USAGE,
  );
  if (typeof args === 'number') process.exit(args);
  const dataDir = args.data !== undefined ? path.resolve(args.data) : undefined;
  const target = args.target;
  if (target !== 'ahds' && target !== 'hapi') {
    console.error(`--target must be ahds or hapi, not ${target}. Run with --help for the options.`);
    process.exit(64);
  }
  const openemr =
    args.directory !== undefined ? { directoryDir: args.directory === 'none' ? null : path.resolve(args.directory) } : undefined;
  const stack = await startStack({ dataDir, target, ...(openemr ? { openemr } : {}), hapi: { log: (line) => console.log(line) } });
  Object.assign(process.env, stack.env);
  const host = await startFunctionsHost({ log: (line) => console.log(line) });
  const keyFile = writeLocalSettings(stack);
  const firstPatient = stack.openemr.store.ids('Patient')[0] ?? '<patient id>';

  console.log(`
Local stack is up (Ctrl-C stops it).

  OpenEMR stand-in   ${stack.openemr.fhirBaseUrl}
    token endpoint   ${stack.openemr.tokenUrl}   (SMART Backend Services, RS384 assertions only)
    client id        ${stack.openemr.client.clientId}
    private key      ${keyFile}
    control API      ${stack.openemr.baseUrl}/_control
  AHDS stand-in      ${stack.ahds.fhirUrl}${stack.hapi ? `\n  HAPI FHIR (target) ${stack.hapi.fhirUrl}   (R4, H2 in memory, HL7 validator on; no auth)` : ''}
    Entra authority  ${stack.entra.authorityHost}  tenant ${stack.entra.tenantId}  client ${stack.entra.clientId}
  Azurite            ${stack.azurite ? `blob ${stack.azurite.blobPort}, queue ${stack.azurite.queuePort}, table ${stack.azurite.tablePort}` : 'off'}
  Connector (HTTP)   ${host.url}
  Settings           .stack/local.settings.json (every setting pointing at this stack)

Try (no token is printed: the first two lines get one each, the way the connector does):
  OPENEMR_TOKEN=$(npm run --silent stack:token -- --side openemr)
  AHDS_TOKEN=$(npm run --silent stack:token -- --side ahds)
  curl -s -H "Authorization: Bearer $OPENEMR_TOKEN" "${stack.openemr.fhirBaseUrl}/Patient?_count=2&_sort=_lastUpdated"
  curl -s -X POST ${host.url}/sync/patients/${firstPatient}/everything
  curl -s -X POST "${host.url}/backfill"        # 202; follow its statusUrl
  curl -s -H "Authorization: Bearer $AHDS_TOKEN" "${stack.ahds.fhirUrl}/Observation?_summary=count"${stack.hapi ? `\n  curl -s "${stack.hapi.fhirUrl}/Observation?_summary=count"` : ''}
  npm run sync -- --settings .stack/local.settings.json
`);

  const stop = async (): Promise<void> => {
    await host.close();
    await stack.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

/** Writes the key and a local.settings.json for this stack under .stack/ (git-ignored). */
function writeLocalSettings(stack: Stack): string {
  const dir = path.join(findRepoRoot(), '.stack');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keyFile = path.join(dir, 'openemr-client-key.pem');
  writePrivateFile(keyFile, stack.openemr.client.privateKeyPem);
  writePrivateFile(
    path.join(dir, 'local.settings.json'),
    JSON.stringify({ IsEncrypted: false, Values: { FUNCTIONS_WORKER_RUNTIME: 'node', ...stack.env } }, null, 2),
  );
  return keyFile;
}

main().catch((error: unknown) => {
  console.error(`The local stack did not start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
