import fs from 'node:fs';
import path from 'node:path';
import { commandLine } from '../src/cli/args';
import { writePrivateFile } from '../src/cli/private-file';
import { registerOpenEmrClient } from '../src/openemr/registration';

/**
 * `npm run openemr:register -- --base-url https://emr.example.org [--site default] [--scopes "..."] [--out DIR]`
 * Reads the release from /metadata, creates a key pair, registers the client the way that release
 * accepts, and says what the administrator does next.
 */
export const USAGE = `Usage: npm run openemr:register -- --base-url https://emr.example.org [--site default] [--name NAME] [--contact EMAIL] [--scopes LIST] [--out DIR]

Reads the release from /metadata, creates an RSA key pair, registers a SMART Backend Services client
the way that release accepts and prints what the OpenEMR administrator and you do next. The private key is written with mode 0600 into --out
(default .openemr-client, which git and the deployment package both ignore).

  --base-url URL   OpenEMR server root (or OPENEMR_BASE_URL)
  --site NAME      OpenEMR site (default: default)
  --name NAME      client name shown to the administrator
  --contact EMAIL  contact e-mail of the client
  --scopes LIST    scopes to register (default: what the release knows, read from /metadata)
  --out DIR        where the key and the JWKS go (default .openemr-client)
  --help           this text`;

async function main(): Promise<void> {
  const parsed = commandLine(
    process.argv.slice(2),
    {
      'base-url': { type: 'string' },
      site: { type: 'string', default: 'default' },
      name: { type: 'string' },
      contact: { type: 'string' },
      scopes: { type: 'string' },
      out: { type: 'string', default: '.openemr-client' },
    },
    USAGE,
  );
  if (typeof parsed === 'number') process.exit(parsed);
  const values = parsed;
  const baseUrl = values['base-url'] ?? process.env.OPENEMR_BASE_URL;
  if (!baseUrl) {
    console.error('--base-url is required (or OPENEMR_BASE_URL). Run with --help for the options.');
    process.exit(64);
  }
  const result = await registerOpenEmrClient({
    baseUrl,
    site: values.site,
    clientName: values.name,
    contact: values.contact,
    scopes: values.scopes,
  });
  const dir = path.resolve(values.out!);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keyFile = path.join(dir, 'private-key.pem');
  writePrivateFile(keyFile, result.privateKeyPem);
  fs.writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify(result.jwks, null, 2) + '\n');
  const legacy = result.tokenEndpointAuthMethod === 'omitted';
  console.log(`Registered with OpenEMR${result.softwareVersion ? ` ${result.softwareVersion}` : ''} at ${baseUrl}.

  client id     ${result.clientId}
  key id (kid)  ${result.keyId}   (the RFC 7638 thumbprint; the connector sends it without OPENEMR_KEY_ID)
  private key   ${keyFile}   (keep it secret; it signs every token request)
  public JWKS   ${path.join(dir, 'jwks.json')}
  scopes        ${result.scopes}
${
  legacy
    ? `
This release (before 7.0.4) refuses token_endpoint_auth_method private_key_jwt and knows no SMART v2
(.rs) scopes, so the client was registered without a method and with v1 scopes; OpenEMR still checks
the signed assertion against the JWKS. Keep OPENEMR_SCOPES to .read scopes. The client_secret in
OpenEMR's answer is never used and was not kept.
`
    : ''
}
Next, an OpenEMR administrator must:
  1. Administration > Globals > Connectors: turn on "Enable OpenEMR FHIR System Scopes" (system/* scopes do not exist otherwise)
     and check "Site Address Override" (site_addr_oath) holds the public https URL: assertions are checked against it.
  2. Administration > System > API Clients: find "${values.name ?? 'OpenEMR to AHDS FHIR sync'}" and enable it (new clients start disabled).
Then store the settings, in Azure as Key Vault secrets referenced from the app settings:
  az keyvault secret set --vault-name <vault> --name openemr-client-id --value ${result.clientId}
  az keyvault secret set --vault-name <vault> --name openemr-private-key --file ${keyFile}
and delete ${keyFile} once it is stored.`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
