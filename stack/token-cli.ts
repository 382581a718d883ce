import path from 'node:path';
import { createAzureCredential, CredentialTokenSource } from '../src/ahds/credential';
import { commandLine } from '../src/cli/args';
import { readSettings } from '../src/cli/sync-cli';
import { loadConfig } from '../src/config/load';
import { resolvePrivateKey } from '../src/openemr/key-source';
import { SmartBackendTokenProvider } from '../src/openemr/token-provider';
import { NoopTelemetry } from '../src/telemetry/telemetry';
import { findRepoRoot } from './openemr/repo-paths';

export const USAGE = `Usage: npm run stack:token -- --side openemr|ahds [--settings FILE]   (add --silent after run to get the token alone)

Prints one access token for the side, obtained the way the connector obtains it (a signed client
assertion for OpenEMR, the Entra credential for AHDS), from the settings of the running local stack
(default .stack/local.settings.json). Tokens are never printed in a banner; use this in a shell:
  TOKEN=$(npm run --silent stack:token -- --side openemr)`;

async function main(): Promise<number> {
  const args = commandLine(process.argv.slice(2), { side: { type: 'string' }, settings: { type: 'string' } }, USAGE);
  if (typeof args === 'number') return args;
  if (args.side !== 'openemr' && args.side !== 'ahds') {
    process.stderr.write('--side must be openemr or ahds. Run with --help for the options.\n');
    return 64;
  }
  const { env } = readSettings(
    { env: process.env, cwd: process.cwd() },
    args.settings ?? path.join(findRepoRoot(), '.stack', 'local.settings.json'),
  );
  const config = loadConfig(env);
  let credential: ReturnType<typeof createAzureCredential> | undefined;
  const getCredential = () => (credential ??= createAzureCredential(config.azureAuth));
  if (args.side === 'ahds') {
    process.stdout.write(`${await new CredentialTokenSource(getCredential(), config.ahds.audience).getToken()}\n`);
    return 0;
  }
  const privateKey = await resolvePrivateKey(config.openemr, getCredential);
  const provider = new SmartBackendTokenProvider({ ...config.openemr, privateKey }, config.http, new NoopTelemetry());
  process.stdout.write(`${await provider.getToken()}\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`No token: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
