import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeProtectedHeader, exportPKCS8, generateKeyPair, importSPKI, jwtVerify, exportSPKI } from 'jose';
import { loadConfig } from '../../src/config/load';
import { noAuthWarning, OAuthTokenSource } from '../../src/target/auth';
import { missingCapabilities, parseCapabilities, planWrites } from '../../src/target/capabilities';
import { isPrivateHost } from '../../src/target/config';
import { makeRsaKey } from '../helpers/keys';
import { configError, minimalSettings } from '../helpers/settings';

let pem: string;
beforeAll(async () => {
  pem = (await makeRsaKey()).pem;
});

/** Settings without AHDS_FHIR_URL: each test names its target. */
const env = (overrides: Record<string, string | undefined> = {}): NodeJS.ProcessEnv =>
  minimalSettings(pem, { AHDS_FHIR_URL: undefined, ...overrides });

describe('target settings', () => {
  test('AHDS stays the default: AHDS_FHIR_URL alone gives kind ahds with Entra', () => {
    const config = loadConfig(env({ AHDS_FHIR_URL: 'https://ws-fhir.fhir.azurehealthcareapis.com/' }));
    expect(config.target).toMatchObject({
      kind: 'ahds',
      fhirUrl: 'https://ws-fhir.fhir.azurehealthcareapis.com',
      auth: { mode: 'entra' },
      bundles: 'auto',
    });
    expect(config.ahds.fhirUrl).toBe(config.target.fhirUrl);
  });

  test('one of AHDS_FHIR_URL and TARGET_FHIR_URL is required', () => {
    expect(configError(env()).setting).toBe('AHDS_FHIR_URL');
  });

  test('a generic FHIR target needs TARGET_AUTH, and none only on loopback or a private network', () => {
    expect(configError(env({ TARGET_KIND: 'fhir', TARGET_FHIR_URL: 'https://hapi.example.org/fhir' })).setting).toBe('TARGET_AUTH');
    const publicNone = configError(env({ TARGET_KIND: 'fhir', TARGET_FHIR_URL: 'https://hapi.example.org/fhir', TARGET_AUTH: 'none' }));
    expect(publicNone.setting).toBe('TARGET_AUTH');
    expect(publicNone.message).toMatch(/loopback and private networks/);
    expect(
      loadConfig(env({ TARGET_KIND: 'fhir', TARGET_FHIR_URL: 'http://127.0.0.1:8080/fhir', TARGET_AUTH: 'none' })).target.auth,
    ).toEqual({ mode: 'none' });
    expect(loadConfig(env({ TARGET_KIND: 'fhir', TARGET_FHIR_URL: 'https://10.1.2.3/fhir', TARGET_AUTH: 'none' })).target.auth).toEqual({
      mode: 'none',
    });
    expect(
      ['127.0.0.1', '10.0.0.1', '192.168.1.9', '172.20.0.4', 'hapi.internal', 'hapi'].map((h) => isPrivateHost(`https://${h}/fhir`)),
    ).toEqual([true, true, true, true, true, true]);
    expect(['hapi.example.org', '172.32.0.1', '8.8.8.8'].map((h) => isPrivateHost(`https://${h}/fhir`))).toEqual([false, false, false]);
  });

  test('smart-backend needs a client id, a key id and an RSA or P-384 key; the key picks RS384 or ES384', async () => {
    const base = { TARGET_KIND: 'fhir', TARGET_FHIR_URL: 'https://hapi.example.org/fhir', TARGET_AUTH: 'smart-backend' };
    expect(configError(env(base)).setting).toBe('TARGET_CLIENT_ID');
    expect(configError(env({ ...base, TARGET_CLIENT_ID: 'c' })).setting).toBe('TARGET_PRIVATE_KEY');
    expect(configError(env({ ...base, TARGET_CLIENT_ID: 'c', TARGET_PRIVATE_KEY: pem })).setting).toBe('TARGET_KEY_ID');
    const rsa = loadConfig(env({ ...base, TARGET_CLIENT_ID: 'c', TARGET_PRIVATE_KEY: pem, TARGET_KEY_ID: 'k1' }));
    expect(rsa.target.auth).toMatchObject({
      mode: 'smart-backend',
      algorithm: 'RS384',
      keyId: 'k1',
      scopes: 'system/*.read system/*.write',
    });
    const ec = await generateKeyPair('ES384', { extractable: true });
    const ecConfig = loadConfig(
      env({ ...base, TARGET_CLIENT_ID: 'c', TARGET_PRIVATE_KEY: await exportPKCS8(ec.privateKey), TARGET_KEY_ID: 'k2' }),
    );
    expect(ecConfig.target.auth).toMatchObject({ algorithm: 'ES384' });
    const p256 = await generateKeyPair('ES256', { extractable: true });
    const bad = configError(
      env({ ...base, TARGET_CLIENT_ID: 'c', TARGET_PRIVATE_KEY: await exportPKCS8(p256.privateKey), TARGET_KEY_ID: 'k3' }),
    );
    expect(bad.setting).toBe('TARGET_PRIVATE_KEY');
    expect(bad.message).not.toContain('PRIVATE KEY-----');
  });

  test('client-secret needs a client id and secret', () => {
    const base = {
      TARGET_KIND: 'fhir',
      TARGET_FHIR_URL: 'https://hapi.example.org/fhir',
      TARGET_AUTH: 'client-secret',
      TARGET_CLIENT_ID: 'c',
    };
    expect(configError(env(base)).setting).toBe('TARGET_CLIENT_SECRET');
    expect(loadConfig(env({ ...base, TARGET_CLIENT_SECRET: 's3cret' })).target.auth).toMatchObject({
      mode: 'client-secret',
      clientId: 'c',
    });
  });

  test('the none warning is loud and names only the host', () => {
    const line = noAuthWarning('http://127.0.0.1:8080/fhir');
    expect(line).toMatch(/^WARNING: TARGET_AUTH=none/);
    expect(line).toContain('127.0.0.1:8080');
    expect(line).toContain('WITHOUT AUTHENTICATION');
  });
});

/** A token endpoint on loopback that records what it was sent. */
async function tokenServer(): Promise<{
  url: string;
  requests: Array<{ headers: http.IncomingHttpHeaders; body: URLSearchParams; path: string }>;
  close(): Promise<void>;
}> {
  const requests: Array<{ headers: http.IncomingHttpHeaders; body: URLSearchParams; path: string }> = [];
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      if (req.url === '/fhir/.well-known/smart-configuration') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ token_endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token` }));
        return;
      }
      requests.push({ headers: req.headers, body: new URLSearchParams(raw), path: req.url ?? '' });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ access_token: `token-${requests.length}`, token_type: 'bearer', expires_in: 300 }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, requests, close: () => new Promise((r) => server.close(() => r())) };
}

describe('target auth', () => {
  test('SMART Backend Services: an ES384 assertion with kid, iss = sub = client id, aud = the token URL found in smart-configuration; the token is cached', async () => {
    const server = await tokenServer();
    try {
      const ec = await generateKeyPair('ES384', { extractable: true });
      const source = new OAuthTokenSource(
        {
          mode: 'smart-backend',
          clientId: 'sync-client',
          privateKey: await exportPKCS8(ec.privateKey),
          keyId: 'key-2026',
          algorithm: 'ES384',
          scopes: 'system/*.write',
        },
        `${server.url}/fhir`,
      );
      expect(await source.getToken()).toBe('token-1');
      expect(await source.getToken()).toBe('token-1');
      expect(server.requests).toHaveLength(1);
      const { body, path } = server.requests[0]!;
      expect(path).toBe('/token');
      expect(body.get('grant_type')).toBe('client_credentials');
      expect(body.get('scope')).toBe('system/*.write');
      expect(body.get('client_assertion_type')).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
      const assertion = body.get('client_assertion')!;
      expect(decodeProtectedHeader(assertion)).toMatchObject({ alg: 'ES384', kid: 'key-2026', typ: 'JWT' });
      const publicKey = await importSPKI(await exportSPKI(ec.publicKey), 'ES384');
      const { payload } = await jwtVerify(assertion, publicKey, {
        audience: `${server.url}/token`,
        issuer: 'sync-client',
        subject: 'sync-client',
      });
      expect(payload.jti).toEqual(expect.any(String));
      source.invalidate();
      expect(await source.getToken()).toBe('token-2');
    } finally {
      await server.close();
    }
  });

  test('client_credentials with a secret: HTTP Basic, no assertion', async () => {
    const server = await tokenServer();
    try {
      const source = new OAuthTokenSource(
        { mode: 'client-secret', tokenUrl: `${server.url}/token`, clientId: 'c:1', clientSecret: 's e', scopes: 'system/*.write' },
        `${server.url}/fhir`,
      );
      expect(await source.getToken()).toBe('token-1');
      const { headers, body } = server.requests[0]!;
      expect(headers.authorization).toBe(`Basic ${Buffer.from('c%3A1:s%20e').toString('base64')}`);
      expect(body.get('client_assertion')).toBeNull();
      expect(body.get('grant_type')).toBe('client_credentials');
    } finally {
      await server.close();
    }
  });
});

describe('target capabilities', () => {
  const hapiLike = {
    resourceType: 'CapabilityStatement',
    fhirVersion: '4.0.1',
    software: { name: 'HAPI FHIR Server', version: '8.8.0' },
    rest: [
      {
        mode: 'server',
        interaction: [{ code: 'transaction' }, { code: 'history-system' }],
        resource: [
          {
            type: 'Patient',
            updateCreate: true,
            versioning: 'versioned-update',
            interaction: [{ code: 'read' }, { code: 'update' }, { code: 'delete' }],
          },
          { type: 'Observation', updateCreate: true, versioning: 'versioned-update', interaction: [{ code: 'update' }] },
        ],
      },
    ],
  };

  test('HAPI lists transaction but not batch, and is written with batch bundles all the same', () => {
    const caps = parseCapabilities(hapiLike);
    expect(caps).toMatchObject({ fhirVersion: '4.0.1', batch: false, transaction: true });
    expect(caps.types.Patient).toEqual({ updateCreate: true, update: true, delete: true, versioning: 'versioned-update' });
    expect(planWrites(caps, 'auto').bundles).toBe('batch');
    expect(missingCapabilities(caps, ['Patient', 'Observation'])).toEqual([]);
  });

  test('a server that lists batch gets bundles; one that lists neither gets one PUT per resource; the setting wins', () => {
    const withBatch = parseCapabilities({
      ...hapiLike,
      software: { name: 'Other' },
      rest: [{ ...hapiLike.rest[0], interaction: [{ code: 'batch' }] }],
    });
    expect(planWrites(withBatch, 'auto').bundles).toBe('batch');
    const without = parseCapabilities({ ...hapiLike, software: { name: 'Other' } });
    expect(planWrites(without, 'auto')).toEqual({ bundles: 'single', reason: 'the CapabilityStatement lists no batch interaction' });
    expect(planWrites(without, 'batch').bundles).toBe('batch');
  });

  test('a target that cannot PUT-create with client ids, or is not R4, is refused with the reason', () => {
    const noCreate = parseCapabilities({
      ...hapiLike,
      rest: [{ ...hapiLike.rest[0], resource: [{ type: 'Patient', updateCreate: false, interaction: [{ code: 'update' }] }] }],
    });
    expect(missingCapabilities(noCreate, ['Patient', 'Observation'])).toEqual([
      "Patient cannot be created by PUT with the client's id (updateCreate)",
      'Observation is not supported',
    ]);
    expect(() => parseCapabilities({ ...hapiLike, fhirVersion: '5.0.0' })).toThrow(/FHIR 5\.0\.0; the connector writes R4/);
    expect(() => parseCapabilities({ resourceType: 'OperationOutcome' })).toThrow(/not a CapabilityStatement/);
  });
});
