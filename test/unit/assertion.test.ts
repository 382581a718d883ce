import { decodeJwt, decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import { assertionClaims, importSigningKey, signClientAssertion } from '../../src/openemr/assertion';
import { makeRsaKey } from '../helpers/keys';

describe('SMART Backend Services client assertion', () => {
  test('claims: iss = sub = client id, aud = token URL, exp five minutes after iat', () => {
    const claims = assertionClaims('client-1', 'https://emr/oauth2/default/token', 1_700_000_000, 'jti-1');
    expect(claims).toEqual({
      iss: 'client-1',
      sub: 'client-1',
      aud: 'https://emr/oauth2/default/token',
      jti: 'jti-1',
      iat: 1_700_000_000,
      exp: 1_700_000_300,
    });
  });

  test('every assertion has a fresh jti', () => {
    const a = assertionClaims('c', 'u', 1);
    const b = assertionClaims('c', 'u', 1);
    expect(a.jti).not.toBe(b.jti);
  });

  test.each(['pem', 'jwk'] as const)('is signed RS384 with a %s key and verifies against the public key', async (form) => {
    const key = await makeRsaKey();
    const signing = await importSigningKey(form === 'pem' ? key.pem : JSON.stringify(key.jwk));
    const jwt = await signClientAssertion(assertionClaims('c', 'https://t', Math.floor(Date.now() / 1000)), signing, 'kid-1');
    expect(decodeProtectedHeader(jwt)).toMatchObject({ alg: 'RS384', typ: 'JWT', kid: 'kid-1' });
    const { payload } = await jwtVerify(jwt, await importJWK(key.publicJwk, 'RS384'), { audience: 'https://t', issuer: 'c', subject: 'c' });
    expect(payload.jti).toBe(decodeJwt(jwt).jti);
  });
});

test('a PKCS#1 PEM key (as older tooling writes them) signs too', async () => {
  const { generateKeyPairSync } = await import('node:crypto');
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const jwt = await signClientAssertion(
    assertionClaims('c', 'https://t', Math.floor(Date.now() / 1000)),
    await importSigningKey(privateKey),
  );
  const { importSPKI } = await import('jose');
  await expect(jwtVerify(jwt, await importSPKI(publicKey, 'RS384'))).resolves.toBeDefined();
});

describe('granted scopes', () => {
  const { missingRequiredScopes } = jest.requireActual(
    '../../src/openemr/token-provider',
  ) as typeof import('../../src/openemr/token-provider');
  const requested = 'system/Patient.read system/Observation.read system/*.$export system/Binary.read';
  test('a token without the Observation read scope is reported', () => {
    expect(missingRequiredScopes(requested, 'system/Patient.read')).toEqual(['system/Observation.read']);
  });
  test('a read scope of any carried type the token lacks is reported (not only Patient and Observation)', () => {
    expect(
      missingRequiredScopes('system/Patient.read system/Encounter.rs system/Condition.read', 'system/Patient.read system/Condition.read'),
    ).toEqual(['system/Encounter.rs']);
  });
  test('missing bulk export scopes are not a failure: the connector reads by search instead', () => {
    expect(missingRequiredScopes(requested, 'system/Patient.read system/Observation.read')).toEqual([]);
  });
});
