import fs from 'node:fs';
import path from 'node:path';
import { startStack, type Stack } from './index';
import { startFunctionsHost } from './functions-host';
import { findRepoRoot } from './openemr/repo-paths';

/**
 * `npm run stack`: the whole local stack plus the connector's HTTP functions, up until Ctrl-C.
 * Prints the URLs, the OpenEMR client id with its key file, and curl lines that work as printed.
 */
async function main(): Promise<void> {
  const dataArg = process.argv.indexOf('--data');
  const dataDir = dataArg > 0 ? path.resolve(process.argv[dataArg + 1] ?? '') : undefined;
  const targetArg = process.argv.indexOf('--target');
  const target = targetArg > 0 ? process.argv[targetArg + 1] : 'ahds';
  if (target !== 'ahds' && target !== 'hapi') throw new Error(`--target must be ahds or hapi, not ${target}`);
  const stack = await startStack({ dataDir, target, hapi: { log: (line) => console.log(line) } });
  Object.assign(process.env, stack.env);
  const host = await startFunctionsHost({ log: (line) => console.log(line) });
  const keyFile = writeLocalSettings(stack);
  const token = await issueOpenEmrToken(stack);
  const ahdsToken = await stack.entra.issueToken(stack.entra.clientId, stack.ahds.audience);
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

Try:
  curl -s -H "Authorization: Bearer ${token}" "${stack.openemr.fhirBaseUrl}/Patient?_count=2&_sort=_lastUpdated"
  curl -s -X POST ${host.url}/sync/patients/${firstPatient}/everything
  curl -s -H "Authorization: Bearer ${ahdsToken}" "${stack.ahds.fhirUrl}/Observation?_summary=count"${stack.hapi ? `\n  curl -s "${stack.hapi.fhirUrl}/Observation?_summary=count"` : ''}
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
  fs.mkdirSync(dir, { recursive: true });
  const keyFile = path.join(dir, 'openemr-client-key.pem');
  fs.writeFileSync(keyFile, stack.openemr.client.privateKeyPem, { mode: 0o600 });
  fs.writeFileSync(
    path.join(dir, 'local.settings.json'),
    JSON.stringify({ IsEncrypted: false, Values: { FUNCTIONS_WORKER_RUNTIME: 'node', ...stack.env } }, null, 2),
    { mode: 0o600 },
  );
  return keyFile;
}

/** A ready access token, obtained the way the connector does it, for the printed curl line. */
async function issueOpenEmrToken(stack: Stack): Promise<string> {
  const { SmartBackendTokenProvider } = await import('../src/openemr/token-provider');
  const { loadConfig } = await import('../src/config/load');
  const { NoopTelemetry } = await import('../src/telemetry/telemetry');
  const config = loadConfig(stack.env);
  const provider = new SmartBackendTokenProvider({ ...config.openemr, privateKey: stack.openemr.client.privateKeyPem }, config.http, new NoopTelemetry());
  return provider.getToken();
}

main().catch((error: unknown) => {
  console.error(`The local stack did not start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
