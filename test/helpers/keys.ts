import { exportJWK, exportPKCS8, generateKeyPair, type JWK } from 'jose';

/** A fresh RS384 key pair per test run: no private key is ever committed. */
export async function makeRsaKey(): Promise<{ pem: string; jwk: JWK; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair('RS384', { extractable: true });
  return {
    pem: await exportPKCS8(privateKey),
    jwk: await exportJWK(privateKey),
    publicJwk: await exportJWK(publicKey),
  };
}
