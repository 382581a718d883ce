import { ClientSecretCredential } from '@azure/identity';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { startEntraStandIn, type EntraStandIn } from '../../stack/entra';

const AUD = 'https://ws-fhir.fhir.azurehealthcareapis.com';
const TENANT = '11111111-2222-4333-8444-555555555555';

async function postToken(entra: EntraStandIn, form: Record<string, string>): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(entra.tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

const form = (clientId: string, clientSecret: string, scope = `${AUD}/.default`): Record<string, string> => ({
  grant_type: 'client_credentials',
  client_id: clientId,
  client_secret: clientSecret,
  scope,
});

function credential(entra: EntraStandIn, clientId: string, secret: string): ClientSecretCredential {
  return new ClientSecretCredential(entra.tenantId, clientId, secret, {
    authorityHost: entra.authorityHost,
    disableInstanceDiscovery: true,
  });
}

describe('Entra ID stand-in', () => {
  let entra: EntraStandIn;
  beforeAll(async () => {
    entra = await startEntraStandIn({
      tenantId: TENANT,
      clients: [
        { clientId: 'sync-app', clientSecret: 's3cret' },
        { clientId: 'other-app', clientSecret: 'other-secret' },
      ],
      tokenLifetimeSeconds: 1800,
    });
  });
  afterAll(() => entra.close());
  beforeEach(() => entra.resetStats());

  test('ClientSecretCredential from @azure/identity obtains a token from the Entra stand-in', async () => {
    const token = await credential(entra, 'sync-app', 's3cret').getToken(`${AUD}/.default`);
    expect(token.token).toBeTruthy();
    expect(token.expiresOnTimestamp).toBeGreaterThan(Date.now() + 1700 * 1000);
    const claims = await entra.verifyAccessToken(token.token, AUD);
    expect(claims.aud).toBe(AUD);
    expect(claims.appid).toBe('sync-app');
    expect(entra.stats().tokensIssued).toBe(1);
  });

  test('ClientSecretCredential caches its token: a second getToken makes no token request', async () => {
    const cred = credential(entra, 'sync-app', 's3cret');
    const a = await cred.getToken(`${AUD}/.default`);
    const b = await cred.getToken(`${AUD}/.default`);
    expect(b.token).toBe(a.token);
    expect(entra.stats().tokenRequests).toBe(1);
  });

  test('openid-configuration names issuer, token_endpoint, authorization_endpoint and jwks_uri', async () => {
    const res = await fetch(`${entra.authorityHost}/${TENANT}/v2.0/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as Record<string, string>;
    expect(doc.issuer).toBe(`${entra.authorityHost}/${TENANT}/v2.0`);
    expect(doc.token_endpoint).toBe(`${entra.authorityHost}/${TENANT}/oauth2/v2.0/token`);
    expect(doc.authorization_endpoint).toBe(`${entra.authorityHost}/${TENANT}/oauth2/v2.0/authorize`);
    expect(doc.jwks_uri).toBe(`${entra.authorityHost}/${TENANT}/discovery/v2.0/keys`);
  });

  test('the JWKS served at jwks_uri verifies issued tokens (RS256)', async () => {
    const { body } = await postToken(entra, form('sync-app', 's3cret'));
    const jwks = createRemoteJWKSet(new URL(entra.jwksUri));
    const { payload, protectedHeader } = await jwtVerify(body.access_token, jwks, { issuer: entra.issuer, audience: AUD });
    expect(protectedHeader.alg).toBe('RS256');
    expect(payload.aud).toBe(AUD);
  });

  test('token response has token_type Bearer, expires_in, ext_expires_in and access_token', async () => {
    const { status, body } = await postToken(entra, form('sync-app', 's3cret'));
    expect(status).toBe(200);
    expect(body).toEqual({ token_type: 'Bearer', expires_in: 1800, ext_expires_in: 1800, access_token: expect.any(String) });
  });

  test('access token claims: aud is the scope without /.default, iss, tid, appid, exp', async () => {
    const before = Math.floor(Date.now() / 1000);
    const { body } = await postToken(entra, form('sync-app', 's3cret', `${AUD}/.default`));
    const claims = decodeJwt(body.access_token);
    expect(claims.aud).toBe(AUD);
    expect(claims.iss).toBe(entra.issuer);
    expect(claims.tid).toBe(TENANT);
    expect(claims.appid).toBe('sync-app');
    expect(claims.exp).toBeGreaterThanOrEqual(before + 1800);
    expect(claims.exp).toBeLessThanOrEqual(before + 1802);
  });

  test('oid is a stable GUID per client', async () => {
    const a = decodeJwt((await postToken(entra, form('sync-app', 's3cret'))).body.access_token);
    const b = decodeJwt((await postToken(entra, form('sync-app', 's3cret'))).body.access_token);
    const c = decodeJwt((await postToken(entra, form('other-app', 'other-secret'))).body.access_token);
    expect(a.oid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(b.oid).toBe(a.oid);
    expect(c.oid).not.toBe(a.oid);
    expect(entra.oidFor('sync-app')).toBe(a.oid);
  });

  test('wrong client secret is rejected with 401 invalid_client AADSTS7000215', async () => {
    const { status, body } = await postToken(entra, form('sync-app', 'wrong'));
    expect(status).toBe(401);
    expect(body.error).toBe('invalid_client');
    expect(body.error_codes).toEqual([7000215]);
    expect(body.error_description).toMatch(/^AADSTS7000215: Invalid client secret provided/);
    expect(body.trace_id).toBeTruthy();
    expect(body.correlation_id).toBeTruthy();
  });

  test('wrong client secret makes ClientSecretCredential.getToken reject', async () => {
    await expect(credential(entra, 'sync-app', 'wrong').getToken(`${AUD}/.default`)).rejects.toThrow(
      /7000215|invalid_client|Invalid client secret/,
    );
  });

  test('unknown client id is rejected with 400 unauthorized_client', async () => {
    const { status, body } = await postToken(entra, form('nobody', 'x'));
    expect(status).toBe(400);
    expect(body.error).toBe('unauthorized_client');
    expect(body.error_codes).toEqual([700016]);
  });

  test('scope without /.default is rejected with 400 invalid_scope', async () => {
    const { status, body } = await postToken(entra, form('sync-app', 's3cret', AUD));
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_scope');
  });

  test('grant types other than client_credentials are rejected', async () => {
    const { status, body } = await postToken(entra, { ...form('sync-app', 's3cret'), grant_type: 'password' });
    expect(status).toBe(400);
    expect(body.error).toBe('unsupported_grant_type');
  });

  test('an unknown tenant is rejected', async () => {
    const res = await fetch(`${entra.authorityHost}/00000000-0000-4000-8000-000000000000/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form('sync-app', 's3cret')).toString(),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_tenant');
  });

  test('token requests are counted, failures included', async () => {
    await postToken(entra, form('sync-app', 's3cret'));
    await postToken(entra, form('sync-app', 'wrong'));
    await postToken(entra, form('other-app', 'other-secret'));
    expect(entra.stats()).toMatchObject({
      tokenRequests: 3,
      tokensIssued: 2,
      tokenFailures: 1,
      byClient: { 'sync-app': 1, 'other-app': 1 },
    });
  });

  test('verifyAccessToken rejects a token for another audience', async () => {
    const { body } = await postToken(entra, form('sync-app', 's3cret', 'https://elsewhere.example/.default'));
    await expect(entra.verifyAccessToken(body.access_token, AUD)).rejects.toThrow();
  });

  test('verifyAccessToken rejects an expired token', async () => {
    const token = await entra.issueToken('sync-app', AUD, -60);
    await expect(entra.verifyAccessToken(token, AUD)).rejects.toThrow(/exp/);
  });

  test('verifyAccessToken rejects a token signed by another Entra stand-in', async () => {
    const other = await startEntraStandIn({ tenantId: TENANT, clients: [{ clientId: 'sync-app', clientSecret: 's3cret' }] });
    try {
      const token = await other.issueToken('sync-app', AUD);
      await expect(entra.verifyAccessToken(token, AUD)).rejects.toThrow();
    } finally {
      await other.close();
    }
  });

  test('default options register one client with a generated secret and a 3600 s lifetime', async () => {
    const e = await startEntraStandIn();
    try {
      expect(e.clientId).toBeTruthy();
      expect(e.clientSecret.length).toBeGreaterThanOrEqual(16);
      const { body } = await postToken(e, form(e.clientId, e.clientSecret));
      expect(body.expires_in).toBe(3600);
    } finally {
      await e.close();
    }
  });
});

describe('Entra ID stand-in with faults', () => {
  test('an injected 429 on the token endpoint carries Retry-After and an AADSTS body', async () => {
    const entra = await startEntraStandIn({
      clients: [{ clientId: 'a', clientSecret: 'b' }],
      faults: { rates: { status429: 1 }, retryAfterMs: 2500, exemptPaths: [/openid-configuration/] },
    });
    try {
      const { status, headers, body } = await postToken(entra, form('a', 'b'));
      expect(status).toBe(429);
      expect(headers.get('retry-after')).toBe('3');
      expect(headers.get('x-ms-retry-after-ms')).toBe('2500');
      expect(body.error_codes).toHaveLength(1);
      expect(entra.stats()).toMatchObject({ tokenRequests: 1, tokensIssued: 0, tokenFailures: 1 });
    } finally {
      await entra.close();
    }
  });

  test('faults tokenLifetimeSeconds shortens the lifetime of tokens issued from then on', async () => {
    const entra = await startEntraStandIn({ clients: [{ clientId: 'a', clientSecret: 'b' }] });
    try {
      expect((await postToken(entra, form('a', 'b'))).body.expires_in).toBe(3600);
      entra.faults.configure({ tokenLifetimeSeconds: 5 });
      const { body } = await postToken(entra, form('a', 'b'));
      expect(body.expires_in).toBe(5);
      const claims = decodeJwt(body.access_token);
      expect(claims.exp! - claims.iat!).toBe(5);
    } finally {
      await entra.close();
    }
  });
});
