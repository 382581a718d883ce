/**
 * The connector's OpenEMR authentication against the stand-in's releases: the token endpoint taken
 * from discovery (site_addr_oath behind a proxy), a kid on every assertion, refusals that name the
 * setting to fix, and a renewal margin that follows the token lifetime.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeProtectedHeader } from 'jose';
import { loadConfig } from '../../src/config/load';
import { createHttpClient } from '../../src/http/client';
import { UpstreamError } from '../../src/http/errors';
import { publicKeyThumbprint, signingKeyId } from '../../src/openemr/assertion';
import { renewMarginMs, SmartBackendTokenProvider } from '../../src/openemr/token-provider';
import { NoopTelemetry } from '../../src/telemetry/telemetry';
import { startOpenEmrStandIn, type OpenEmrStandIn } from '../../stack/openemr';
import { makeRsaKey } from '../helpers/keys';

type Options = Parameters<typeof startOpenEmrStandIn>[0];

function providerFor(s: OpenEmrStandIn, env: Record<string, string> = {}, extra: { now?: () => number; warnings?: string[] } = {}) {
  const config = loadConfig({
    OPENEMR_BASE_URL: s.baseUrl,
    OPENEMR_CLIENT_ID: s.client.clientId,
    OPENEMR_PRIVATE_KEY: s.client.privateKeyPem,
    AHDS_FHIR_URL: 'http://127.0.0.1:1',
    AzureWebJobsStorage: 'UseDevelopmentStorage=true',
    RETRY_MAX_ATTEMPTS: '1',
    ...env,
  });
  const provider = new SmartBackendTokenProvider(
    { ...config.openemr, privateKey: config.openemr.privateKey as string },
    config.http,
    new NoopTelemetry(),
    extra.now,
    (m) => extra.warnings?.push(m),
  );
  return { provider, config };
}

async function withStandIn(options: Options, fn: (s: OpenEmrStandIn) => Promise<void>): Promise<void> {
  const s = await startOpenEmrStandIn({ dataDir: null, ...options });
  try {
    await fn(s);
  } finally {
    await s.close();
  }
}

const failure = (p: Promise<unknown>) => p.then(() => undefined).catch((e: unknown) => e as UpstreamError);

// ServerConfig::getTokenUrl (src/FHIR/Config/ServerConfig.php:165-171) builds both the exact aud
// and the discovered token_endpoint from site_addr_oath.
test('behind a site_addr_oath that differs from its listening URL the connector still authenticates and searches', () =>
  withStandIn({ siteAddrOath: 'http://emr.example.test' }, async (s) => {
    s.store.put({ resourceType: 'Patient', id: 'aaaaaaaa-0000-4000-8000-000000000001', name: [{ family: 'Proxy' }] });
    const warnings: string[] = [];
    const { provider, config } = providerFor(s, {}, { warnings });
    const client = createHttpClient({
      side: 'openemr',
      baseURL: config.openemr.fhirBaseUrl,
      timeoutMs: 30_000,
      retry: config.http.retry,
      telemetry: new NoopTelemetry(),
      dependencyName: 'openemr',
      auth: provider,
    });
    const bundle = await client.get('/Patient', { params: { _lastUpdated: 'ge2000-01-01T00:00:00Z' } });
    expect(bundle.data.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual(['aaaaaaaa-0000-4000-8000-000000000001']);
    await provider.getToken();
    expect(warnings).toEqual([
      expect.stringMatching(
        /^OpenEMR names its token endpoint http:\/\/emr\.example\.test\/oauth2\/default\/token, not http:\/\/127\.0\.0\.1:\d+\/oauth2\/default\/token \(built from OPENEMR_BASE_URL\): .*site_addr_oath/,
      ),
    ]);
    expect(s.stats().byRoute['GET /fhir/.well-known/smart-configuration']).toBe(1);
    expect(s.stats().byRoute['POST /oauth2/token']).toBe(1);
  }));

test('without discovery differences nothing is said and the configured token URL is the audience', () =>
  withStandIn({}, async (s) => {
    const warnings: string[] = [];
    const { provider } = providerFor(s, {}, { warnings });
    await expect(provider.getToken()).resolves.toEqual(expect.any(String));
    expect(await provider.tokenAudience()).toBe(s.audience);
    expect(warnings).toEqual([]);
  }));

// 7.0.3 ScopeRepository.php:148-151 / league AbstractGrant::validateScopes: unknown scope, 400.
test('invalid_scope becomes a sentence naming OPENEMR_SCOPES and the v1 scopes of releases before 7.0.4', () =>
  withStandIn({ version: '7.0.3' }, async (s) => {
    const error = await failure(
      providerFor(s, {
        OPENEMR_SCOPES: 'system/Patient.rs system/Observation.rs',
        SYNC_RESOURCE_TYPES: 'Patient,Observation',
      }).provider.getToken(),
    );
    expect(error).toBeInstanceOf(UpstreamError);
    expect(error!.message).toBe(
      "OpenEMR does not know the scope 'system/Patient.rs' that OPENEMR_SCOPES asks for (400 invalid_scope): releases before 7.0.4 know only SMART v1 scopes (system/Patient.read, not system/Patient.rs), and no system/* scope exists until an administrator turns on 'Enable OpenEMR FHIR System Scopes' (Administration > Globals > Connectors).",
    );
  }));

// SiteSetupListener.php:110.
test('an unknown site is a sentence naming OPENEMR_SITE, never a disabled client', () =>
  withStandIn({}, async (s) => {
    const error = await failure(providerFor(s, { OPENEMR_SITE: 'clinic2' }).provider.getToken());
    expect(error!.message).toMatch(
      /^OpenEMR has no site named 'clinic2' \(it answered 'api site error' at .*\): set OPENEMR_SITE to the name of the OpenEMR site directory/,
    );
    expect(error!.message).not.toMatch(/enabled/);
    expect(error!.statusCode).toBe(400);
  }));

// OAuth2AuthorizationListener.php:108.
test('switched-off APIs are a sentence naming the OpenEMR global to turn on', () =>
  withStandIn({ apiEnabled: false }, async (s) => {
    const error = await failure(providerFor(s).provider.getToken());
    expect(error!.message).toMatch(
      /^OpenEMR's APIs are switched off \(it answered 'API is disabled' at .*\): an administrator must turn on 'Enable OpenEMR Standard FHIR REST API'/,
    );
  }));

test("a base URL missing OpenEMR's web root is a sentence naming OPENEMR_BASE_URL", () =>
  withStandIn({}, async (s) => {
    const error = await failure(providerFor(s, { OPENEMR_BASE_URL: `${s.baseUrl}/openemr` }).provider.getToken());
    expect(error!.message).toMatch(
      /^OpenEMR answered 404 at .*\/openemr\/apis\/default\/fhir\/\.well-known\/smart-configuration: set OPENEMR_BASE_URL to OpenEMR's root including its web root/,
    );
    expect(error!.code).toBe('InvalidResponse');
  }));

test('the renewal margin is a fifth of the token lifetime, at most a minute', () =>
  withStandIn({ tokenLifetimeSeconds: 30 }, async (s) => {
    expect([renewMarginMs(300), renewMarginMs(30), renewMarginMs(3600)]).toEqual([60_000, 6_000, 60_000]);
    let now = Date.now();
    const { provider } = providerFor(s, {}, { now: () => now });
    const first = await provider.getToken();
    now += 23_000;
    expect(await provider.getToken()).toBe(first);
    now += 2_000; // 25 s of 30: inside the 6 s margin
    expect(await provider.getToken()).not.toBe(first);
    expect(s.stats().byRoute['POST /oauth2/token']).toBe(2);
  }));

test('every assertion carries a kid: OPENEMR_KEY_ID, else the JWK kid, else the RFC 7638 thumbprint', async () => {
  const key = await makeRsaKey();
  const { createPublicKey, createPrivateKey } = await import('node:crypto');
  const thumbprint = await publicKeyThumbprint(createPublicKey(createPrivateKey(key.pem)));
  expect(await signingKeyId(key.pem)).toBe(thumbprint);
  expect(await signingKeyId(JSON.stringify(key.jwk))).toBe(thumbprint);
  expect(await signingKeyId(JSON.stringify({ ...key.jwk, kid: 'from-jwk' }))).toBe('from-jwk');
  expect(await signingKeyId(key.pem, 'configured')).toBe('configured');

  // And the provider really sends it: a token endpoint that records the assertion header.
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      if (req.method === 'GET') {
        res.end(JSON.stringify({ token_endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}/oauth2/default/token` }));
        return;
      }
      seen.push(new URLSearchParams(body).get('client_assertion') as string);
      res.end(JSON.stringify({ access_token: 'a', token_type: 'Bearer', expires_in: 300 }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  try {
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const config = loadConfig({
      OPENEMR_BASE_URL: base,
      OPENEMR_CLIENT_ID: 'c',
      OPENEMR_PRIVATE_KEY: key.pem,
      AHDS_FHIR_URL: 'http://127.0.0.1:1',
      AzureWebJobsStorage: 'UseDevelopmentStorage=true',
    });
    await new SmartBackendTokenProvider({ ...config.openemr, privateKey: key.pem }, config.http, new NoopTelemetry()).getToken();
    expect(decodeProtectedHeader(seen[0])).toEqual({ alg: 'RS384', typ: 'JWT', kid: thumbprint });
  } finally {
    server.close();
  }
});
