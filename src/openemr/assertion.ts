import { randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, importJWK, SignJWT, type JWK, type KeyLike } from 'jose';
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
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
  return new SignJWT({ ...claims }).setProtectedHeader({ alg: ASSERTION_ALG, typ: 'JWT', ...(keyId ? { kid: keyId } : {}) }).sign(key);
}

/**
 * The `kid` every assertion carries: OPENEMR_KEY_ID when set, else the private JWK's own `kid`, else
 * the RFC 7638 thumbprint of the public key, which `npm run openemr:register` publishes as the JWKS
 * key's kid. OpenEMR itself takes the first RSA key of the JWKS, but servers in front of it, and
 * JWKS with several keys, need the kid to pick the right one.
 */
export async function signingKeyId(value: string, configured?: string): Promise<string> {
  if (configured) return configured;
  const key = normalisePrivateKey(value);
  if (key.kind === 'jwk' && typeof key.jwk.kid === 'string' && key.jwk.kid !== '') return key.jwk.kid;
  const privateKey = key.kind === 'jwk' ? createPrivateKey({ key: key.jwk as never, format: 'jwk' }) : createPrivateKey(key.pem);
  return publicKeyThumbprint(createPublicKey(privateKey));
}

/** RFC 7638 SHA-256 thumbprint of an RSA public key. */
export async function publicKeyThumbprint(publicKey: KeyObject | KeyLike): Promise<string> {
  const jwk = await exportJWK(publicKey);
  return calculateJwkThumbprint({ kty: jwk.kty, n: jwk.n, e: jwk.e }, 'sha256');
}
