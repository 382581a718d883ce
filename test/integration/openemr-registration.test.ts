import { loadConfig } from '../../src/config/load';
import { registerOpenEmrClient } from '../../src/openemr/registration';
import { OPTIONAL_SCOPES, readScopesOf } from '../../src/openemr/scopes';
import { DEFAULT_RESOURCE_TYPES } from '../../src/sync/resource-types';
import { SmartBackendTokenProvider } from '../../src/openemr/token-provider';
import { NoopTelemetry } from '../../src/telemetry/telemetry';
import { UpstreamError } from '../../src/http/errors';
import { startOpenEmrStandIn, type OpenEmrStandIn } from '../../stack/openemr';

let openemr: OpenEmrStandIn;
beforeAll(async () => {
  openemr = await startOpenEmrStandIn({ dataDir: null });
});
afterAll(() => openemr?.close());

function providerFor(clientId: string, privateKey: string): SmartBackendTokenProvider {
  const config = loadConfig({
    OPENEMR_BASE_URL: openemr.baseUrl,
    OPENEMR_CLIENT_ID: clientId,
    OPENEMR_PRIVATE_KEY: privateKey,
    AHDS_FHIR_URL: 'http://127.0.0.1:1',
    AzureWebJobsStorage: 'UseDevelopmentStorage=true',
    RETRY_MAX_ATTEMPTS: '1',
  });
  return new SmartBackendTokenProvider({ ...config.openemr, privateKey }, config.http, new NoopTelemetry());
}

test('a registered client gets tokens with its generated key once an administrator enables it', async () => {
  const registered = await registerOpenEmrClient({ baseUrl: openemr.baseUrl });
  expect(registered.privateKeyPem).toContain('BEGIN PRIVATE KEY');
  expect(registered.jwks.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS384' });
  expect(registered.jwks.keys[0]).not.toHaveProperty('d');

  const provider = providerFor(registered.clientId, registered.privateKeyPem);
  await expect(provider.getToken()).rejects.toMatchObject({ code: 'AuthenticationFailed', statusCode: 401 });

  openemr.store.enableClient(registered.clientId);
  await expect(provider.getToken()).resolves.toEqual(expect.any(String));
});

test('a token request signed with another key is refused with a message that names the likely causes', async () => {
  const registered = await registerOpenEmrClient({ baseUrl: openemr.baseUrl });
  openemr.store.enableClient(registered.clientId);
  const other = await registerOpenEmrClient({ baseUrl: openemr.baseUrl });
  const error = (await providerFor(registered.clientId, other.privateKeyPem)
    .getToken()
    .catch((e: unknown) => e)) as UpstreamError;
  expect(error).toBeInstanceOf(UpstreamError);
  expect(error.message).toMatch(/^OpenEMR refused the client credentials with 40[01] \(invalid_client\): check that the client is enabled/);
  expect(error.message).not.toContain(other.privateKeyPem.slice(40, 80));
});

// 7.0.3 AuthorizationController.php:245 (client_secret_basic/post only) and ServerScopeListEntity.php:171
// (.rs from 7.0.4): the helper reads /metadata's software.version and registers the way the release accepts.
// The scopes: a read scope per type carried by default (resource-types.ts), then the export scopes.
const v1 = [...readScopesOf(DEFAULT_RESOURCE_TYPES.split(',')), ...OPTIONAL_SCOPES];
const v1v2 = [
  ...readScopesOf(DEFAULT_RESOURCE_TYPES.split(',')),
  ...readScopesOf(DEFAULT_RESOURCE_TYPES.split(',')).map((s) => s.replace('.read', '.rs')),
  ...OPTIONAL_SCOPES,
];
test('the registered scopes cover every type carried by default, v1 form everywhere and v2 from 7.0.4', () => {
  expect(v1).toEqual(
    expect.arrayContaining(['system/Patient.read', 'system/Encounter.read', 'system/Condition.read', 'system/Observation.read']),
  );
  expect(v1v2).toEqual(
    expect.arrayContaining(['system/Patient.rs', 'system/Encounter.rs', 'system/Condition.rs', 'system/Observation.rs']),
  );
});
test.each([
  ['7.0.2', 'omitted', v1.join(' ')],
  ['7.0.3', 'omitted', v1.join(' ')],
  ['7.0.4', 'private_key_jwt', v1v2.join(' ')],
  ['master', 'private_key_jwt', v1v2.join(' ')],
] as const)('the registration helper registers on %s (%s) and the connector then gets tokens', async (version, method, scopes) => {
  const s = await startOpenEmrStandIn({ dataDir: null, version });
  try {
    const registered = await registerOpenEmrClient({ baseUrl: s.baseUrl });
    expect([registered.softwareVersion, registered.tokenEndpointAuthMethod, registered.scopes]).toEqual([
      s.version === 'master' ? '8.2.0-dev' : version,
      method,
      scopes,
    ]);
    expect(registered.jwks.keys[0].kid).toBe(registered.keyId);
    s.store.enableClient(registered.clientId);
    const config = loadConfig({
      OPENEMR_BASE_URL: s.baseUrl,
      OPENEMR_CLIENT_ID: registered.clientId,
      OPENEMR_PRIVATE_KEY: registered.privateKeyPem,
      AHDS_FHIR_URL: 'http://127.0.0.1:1',
      AzureWebJobsStorage: 'UseDevelopmentStorage=true',
      RETRY_MAX_ATTEMPTS: '1',
    });
    const provider = new SmartBackendTokenProvider(
      { ...config.openemr, privateKey: registered.privateKeyPem },
      config.http,
      new NoopTelemetry(),
    );
    await expect(provider.getToken()).resolves.toEqual(expect.any(String));
  } finally {
    await s.close();
  }
});

test('the registration helper names --site when OpenEMR has no such site', async () => {
  await expect(registerOpenEmrClient({ baseUrl: openemr.baseUrl, site: 'clinic2' })).rejects.toThrow(
    /^OpenEMR has no site named 'clinic2' .*set --site \(OPENEMR_SITE\)/,
  );
});
