/**
 * OpenEMR stand-in, OAuth2 side: SMART Backend Services token endpoint, discovery, registration,
 * and how the FHIR API treats tokens and scopes. One test per behaviour.
 */
import { exportJWK, generateKeyPair } from 'jose';
import { OpenEmrStandIn, startOpenEmrStandIn } from '../../stack/openemr';
import { assertionForm, control, fhirGet, getAccessToken, postToken, signAssertion } from '../helpers/openemr-standin-client';

let openemr: OpenEmrStandIn;

beforeAll(async () => {
  openemr = await startOpenEmrStandIn({ dataDir: null });
});
afterAll(async () => {
  await openemr.close();
});

describe('discovery', () => {
  test('openid-configuration advertises private_key_jwt with RS384 and the token URL', async () => {
    const res = await fetch(`${openemr.baseUrl}/oauth2/default/.well-known/openid-configuration`);
    const body = (await res.json()) as Record<string, unknown>;
    expect(res.status).toBe(200);
    expect(body.token_endpoint).toBe(openemr.tokenUrl);
    expect(body.registration_endpoint).toBe(`${openemr.baseUrl}/oauth2/default/registration`);
    expect(body.token_endpoint_auth_methods_supported).toEqual(['private_key_jwt']);
    expect(body.token_endpoint_auth_signing_alg_values_supported).toEqual(['RS384']);
    expect(body.scopes_supported).toEqual(expect.arrayContaining(['system/Patient.rs', 'system/*.$export']));
  });

  test('smart-configuration is served under the FHIR base without a token', async () => {
    const res = await fhirGet(openemr, '/.well-known/smart-configuration');
    expect(res.status).toBe(200);
    expect(res.body.token_endpoint).toBe(openemr.tokenUrl);
    expect(res.body.token_endpoint_auth_signing_alg_values_supported).toEqual(['RS384']);
  });

  test('metadata needs no token and lists Patient and Observation with their search params', async () => {
    const res = await fhirGet(openemr, '/metadata');
    expect(res.status).toBe(200);
    expect(res.body.resourceType).toBe('CapabilityStatement');
    expect(res.body.fhirVersion).toBe('4.0.1');
    const resources = res.body.rest[0].resource as Array<{ type: string; searchParam: Array<{ name: string }> }>;
    const params = (type: string) => resources.find((r) => r.type === type)?.searchParam.map((p) => p.name);
    expect(params('Patient')).toEqual(expect.arrayContaining(['_id', '_lastUpdated', 'identifier', 'name']));
    expect(params('Observation')).toEqual(expect.arrayContaining(['patient', 'code', 'category', 'date', '_id', '_lastUpdated']));
  });
});

describe('token endpoint', () => {
  test('a valid RS384 assertion gets a Bearer token living 300 s', async () => {
    const res = await postToken(openemr, assertionForm(await signAssertion(openemr), 'system/Patient.rs system/Observation.rs'));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      token_type: 'Bearer',
      expires_in: 300,
      access_token: expect.any(String),
      scope: 'system/Patient.rs system/Observation.rs',
    });
    expect(res.headers.get('content-type')).toBe('application/json');
  });

  test('token endpoint rejects a client_secret with 400 invalid_request', async () => {
    const res = await postToken(openemr, { grant_type: 'client_credentials', client_id: openemr.client.clientId, client_secret: 'secret' });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: 'invalid_request',
      error_description: expect.stringContaining('missing a required parameter'),
      hint: 'assertion type is not supported',
      message: expect.stringContaining('missing a required parameter'),
    });
  });

  test('a grant other than client_credentials is unsupported', async () => {
    const res = await postToken(openemr, { grant_type: 'password', username: 'admin', password: 'pass' });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('unsupported_grant_type');
  });

  // league/oauth2-server AbstractGrant::validateScopes throws invalidScope for a scope the
  // ScopeRepository does not know (7.0.3 ScopeRepository.php:148-151, master :105-115).
  test('an unknown requested scope is 400 invalid_scope, not dropped', async () => {
    const res = await postToken(openemr, assertionForm(await signAssertion(openemr), 'system/Patient.rs system/Flag.rs'));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_scope');
    expect(res.body.hint).toBe('Check the `system/Flag.rs` scope');
  });

  test('without a scope parameter the client gets all its registered scopes', async () => {
    const res = await postToken(openemr, assertionForm(await signAssertion(openemr)));
    expect(res.status).toBe(200);
    expect(res.body.scope.split(' ').sort()).toEqual(openemr.client.scopes.split(' ').sort());
  });

  test('a replayed jti is rejected', async () => {
    const assertion = await signAssertion(openemr);
    expect((await postToken(openemr, assertionForm(assertion))).status).toBe(200);
    const replay = await postToken(openemr, assertionForm(assertion));
    expect(replay.status).toBe(400);
    expect(replay.body.error).toBe('invalid_client');
  });

  test('an assertion without jti is rejected', async () => {
    const res = await postToken(openemr, assertionForm(await signAssertion(openemr, { omit: ['jti'] })));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_client');
  });

  test('an assertion signed with RS256 is rejected', async () => {
    const res = await postToken(openemr, assertionForm(await signAssertion(openemr, { alg: 'RS256' })));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_client');
  });

  test('an assertion signed with another key is rejected', async () => {
    const other = await generateKeyPair('RS384');
    const res = await postToken(openemr, assertionForm(await signAssertion(openemr, { key: other.privateKey })));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_client');
  });

  test('aud must be the exact token URL', async () => {
    const variants = [openemr.tokenUrl.replace('127.0.0.1', 'localhost'), `${openemr.tokenUrl}/`, `${openemr.baseUrl}/oauth2/default`];
    for (const aud of variants) {
      const res = await postToken(openemr, assertionForm(await signAssertion(openemr, { claims: { aud } })));
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('invalid_client');
    }
  });

  test('aud may be an array that contains the token URL', async () => {
    const res = await postToken(
      openemr,
      assertionForm(await signAssertion(openemr, { claims: { aud: ['https://elsewhere.example', openemr.tokenUrl] } })),
    );
    expect(res.status).toBe(200);
  });

  test('iss and sub must both be the client_id', async () => {
    const res = await postToken(openemr, assertionForm(await signAssertion(openemr, { claims: { sub: 'someone-else' } })));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_client');
  });

  test('exp more than 24 hours ahead is rejected', async () => {
    const now = Math.floor(openemr.store.now() / 1000);
    const res = await postToken(openemr, assertionForm(await signAssertion(openemr, { claims: { exp: now + 25 * 3600 } })));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_client');
  });

  test('an expired assertion is rejected', async () => {
    const now = Math.floor(openemr.store.now() / 1000);
    const res = await postToken(openemr, assertionForm(await signAssertion(openemr, { claims: { iat: now - 200, exp: now - 120 } })));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_client');
  });

  test('iat more than 5 minutes old (beyond the 1 minute leeway) is rejected', async () => {
    const now = Math.floor(openemr.store.now() / 1000);
    const old = await postToken(openemr, assertionForm(await signAssertion(openemr, { claims: { iat: now - 7 * 60 } })));
    expect(old.status).toBe(400);
    expect(old.body.error).toBe('invalid_client');
    const withinLeeway = await postToken(openemr, assertionForm(await signAssertion(openemr, { claims: { iat: now - 5 * 60 - 30 } })));
    expect(withinLeeway.status).toBe(200);
  });

  test('the kid is ignored: the first RSA key of the JWKS is used', async () => {
    const res = await postToken(openemr, assertionForm(await signAssertion(openemr, { kid: 'no-such-kid' })));
    expect(res.status).toBe(200);
  });

  test('an unknown client gets 401 invalid_client', async () => {
    const res = await postToken(openemr, assertionForm(await signAssertion(openemr, { clientId: 'not-registered' })));
    expect(res.status).toBe(401);
    expect(res.body).toEqual({
      error: 'invalid_client',
      error_description: 'Client authentication failed',
      message: 'Client authentication failed',
    });
  });

  test('an unparsable assertion gets 401 invalid_client', async () => {
    const res = await postToken(openemr, assertionForm('not-a-jwt'));
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
  });
});

describe('client registration', () => {
  test('registration answers like OpenEMR and the new client starts disabled until enabled', async () => {
    const keys = await generateKeyPair('RS384', { extractable: true });
    const jwk = { ...(await exportJWK(keys.publicKey)), alg: 'RS384', kid: 'k1' };
    const res = await fetch(`${openemr.baseUrl}/oauth2/default/registration`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        application_type: 'private',
        client_name: 'sync connector',
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [jwk] },
        scope: 'system/Patient.rs system/Observation.rs',
        redirect_uris: ['https://example.org/callback'],
      }),
    });
    const reg = (await res.json()) as Record<string, unknown>;
    expect(res.status).toBe(200);
    expect(reg).toEqual(
      expect.objectContaining({
        client_id: expect.any(String),
        client_secret: expect.any(String),
        registration_access_token: expect.any(String),
        registration_client_uri: expect.stringContaining('/oauth2/default/client/'),
        client_id_issued_at: expect.any(Number),
        client_secret_expires_at: 0,
        application_type: 'private',
        client_name: 'sync connector',
        token_endpoint_auth_method: 'private_key_jwt',
        scope: 'system/Patient.rs system/Observation.rs',
      }),
    );
    const clientId = reg.client_id as string;
    const opts = { clientId, key: keys.privateKey };

    const beforeEnable = await postToken(openemr, assertionForm(await signAssertion(openemr, opts)));
    expect(beforeEnable.status).toBe(401);
    expect(beforeEnable.body.error).toBe('invalid_client');

    expect((await control(openemr, 'POST', `/clients/${clientId}/enable`)).status).toBe(200);
    const afterEnable = await postToken(openemr, assertionForm(await signAssertion(openemr, opts)));
    expect(afterEnable.status).toBe(200);
    expect(afterEnable.body.scope).toBe('system/Patient.rs system/Observation.rs');
  });

  test('registerClient in process registers an enabled client with its own scopes', async () => {
    const keys = await generateKeyPair('RS384', { extractable: true });
    const clientId = openemr.registerClient({ jwks: { keys: [await exportJWK(keys.publicKey)] }, scopes: 'system/Patient.read' });
    const res = await postToken(
      openemr,
      assertionForm(await signAssertion(openemr, { clientId, key: keys.privateKey }), 'system/Patient.read system/Observation.read'),
    );
    expect(res.status).toBe(200);
    expect(res.body.scope).toBe('system/Patient.read');
  });
});

describe('bearer tokens on the FHIR API', () => {
  test('a request without a token gets 401 access_denied', async () => {
    const res = await fhirGet(openemr, '/Patient');
    expect(res.status).toBe(401);
    expect(res.body).toEqual({
      error: 'access_denied',
      error_description: 'The resource owner or authorization server denied the request.',
      hint: 'Missing "Authorization" header',
      message: 'The resource owner or authorization server denied the request.',
    });
  });

  test('an unknown token gets 401', async () => {
    const res = await fhirGet(openemr, '/Patient', 'made-up-token');
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('access_denied');
  });

  test('a token without the Observation scope gets 401 (not 403)', async () => {
    const token = await getAccessToken(openemr, 'system/Patient.rs');
    expect((await fhirGet(openemr, '/Patient', token)).status).toBe(200);
    const res = await fhirGet(openemr, '/Observation', token);
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'An error occurred', message: 'Unauthorized', code: 0 });
  });

  test('SMART v1 .read scopes allow both read and search', async () => {
    const token = await getAccessToken(openemr, 'system/Observation.read');
    expect((await fhirGet(openemr, '/Observation', token)).status).toBe(200);
  });
});

describe('token lifetime', () => {
  test('token expires after tokenLifetimeSeconds when the clock moves', async () => {
    const standIn = await startOpenEmrStandIn({ dataDir: null, tokenLifetimeSeconds: 120 });
    try {
      const res = await postToken(standIn, assertionForm(await signAssertion(standIn)));
      expect(res.body.expires_in).toBe(120);
      const token = res.body.access_token as string;
      await control(standIn, 'POST', '/clock', { advanceSeconds: 119 });
      expect((await fhirGet(standIn, '/Patient', token)).status).toBe(200);
      await control(standIn, 'POST', '/clock', { advanceSeconds: 2 });
      const expired = await fhirGet(standIn, '/Patient', token);
      expect(expired.status).toBe(401);
      expect(expired.body.error).toBe('access_denied');
    } finally {
      await standIn.close();
    }
  });

  test('fault profile tokenLifetimeSeconds shortens tokens issued after it is set', async () => {
    const standIn = await startOpenEmrStandIn({ dataDir: null });
    try {
      const before = await getAccessToken(standIn);
      await control(standIn, 'PUT', '/faults', { tokenLifetimeSeconds: 10 });
      const res = await postToken(standIn, assertionForm(await signAssertion(standIn)));
      expect(res.body.expires_in).toBe(10);
      standIn.store.advanceClock(11);
      expect((await fhirGet(standIn, '/Patient', res.body.access_token)).status).toBe(401);
      expect((await fhirGet(standIn, '/Patient', before)).status).toBe(200);
    } finally {
      await standIn.close();
    }
  });
});
