import { randomUUID } from 'node:crypto';
import { importJWK, SignJWT, type JWK, type KeyLike } from 'jose';
import { createPrivateKey } from 'node:crypto';
import { normalisePrivateKey } from '../config/load';

export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** OpenEMR verifies client assertions with RS384 only. */
export const ASSERTION_ALG = 'RS384';

export interface AssertionClaims {
  iss: string;
  sub: string;
  aud: string;
  jti: string;
  iat: number;
  exp: number;
}

/** Claims of a SMART Backend Services client assertion: iss = sub = client id, aud = token URL, fresh jti. */
export function assertionClaims(clientId: string, tokenUrl: string, nowSeconds: number, jti: string = randomUUID()): AssertionClaims {
  // OpenEMR accepts exp up to 24 h ahead; 5 minutes is what SMART recommends.
  return { iss: clientId, sub: clientId, aud: tokenUrl, jti, iat: nowSeconds, exp: nowSeconds + 300 };
}

/** Loads the configured private key (PEM, PKCS#1 or PKCS#8, or JWK JSON) once for signing. */
export async function importSigningKey(value: string): Promise<KeyLike> {
  const key = normalisePrivateKey(value);
  if (key.kind === 'jwk') return (await importJWK({ ...(key.jwk as unknown as JWK), alg: ASSERTION_ALG }, ASSERTION_ALG)) as KeyLike;
  // Node reads PKCS#8 and PKCS#1 PEM alike, and jose signs with the KeyObject it gives.
  return createPrivateKey(key.pem);
}

export async function signClientAssertion(claims: AssertionClaims, key: KeyLike, keyId?: string): Promise<string> {
  return new SignJWT({ ...claims })
    .setProtectedHeader({ alg: ASSERTION_ALG, typ: 'JWT', ...(keyId ? { kid: keyId } : {}) })
    .sign(key);
}
