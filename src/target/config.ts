import { createPrivateKey } from 'node:crypto';
import type { RawSettings } from '../config/schema';

export type TargetKind = 'ahds' | 'fhir';
export type TargetAuthMode = 'entra' | 'smart-backend' | 'client-secret' | 'none';

/** Who the connector writes to and how it signs in there (settings TARGET_*, with AHDS_* kept). */
export interface TargetConfig {
  kind: TargetKind;
  fhirUrl: string;
  auth:
    | { mode: 'entra' }
    | { mode: 'none' }
    | { mode: 'client-secret'; tokenUrl?: string; clientId: string; clientSecret: string; scopes: string }
    | {
        mode: 'smart-backend';
        tokenUrl?: string;
        clientId: string;
        privateKey: string;
        keyId: string;
        algorithm: 'RS384' | 'ES384';
        scopes: string;
      };
  bundles: 'auto' | 'batch' | 'single';
}

const PRIVATE_HOST = /^(127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|169\.254\.|localhost$|\[?::1\]?$|\[?f[cd][0-9a-f]{2}:)/i;

/** Whether a URL's host is loopback or in a private range (where TARGET_AUTH=none is allowed). */
export function isPrivateHost(url: string): boolean {
  const host = new URL(url).hostname;
  return PRIVATE_HOST.test(host) || host.endsWith('.internal') || host.endsWith('.local') || !host.includes('.');
}

/**
 * The target section of the configuration. `fail(setting, message)` stops start-up with one
 * sentence naming the setting (never its value), as every other setting does.
 */
export function buildTargetConfig(s: RawSettings, fail: (setting: string, message: string) => never): TargetConfig {
  const url = s.TARGET_FHIR_URL ?? s.AHDS_FHIR_URL;
  if (!url) return fail('AHDS_FHIR_URL', 'is required (or TARGET_FHIR_URL): the FHIR base URL the connector writes to');
  const fhirUrl = url.replace(/\/+$/, '');
  const kind = s.TARGET_KIND;
  const mode = s.TARGET_AUTH ?? (kind === 'ahds' ? 'entra' : undefined);
  if (!mode) return fail('TARGET_AUTH', 'is required when TARGET_KIND is fhir: entra, smart-backend, client-secret or none');
  const bundles = s.TARGET_BUNDLES;
  switch (mode) {
    case 'entra':
    case 'none':
      if (mode === 'none' && !isPrivateHost(fhirUrl)) {
        fail(
          'TARGET_AUTH',
          'cannot be none for a public address: an unauthenticated target is allowed only on loopback and private networks',
        );
      }
      return { kind, fhirUrl, auth: { mode }, bundles };
    case 'client-secret': {
      const clientId = s.TARGET_CLIENT_ID ?? fail('TARGET_CLIENT_ID', 'is required when TARGET_AUTH is client-secret');
      const clientSecret = s.TARGET_CLIENT_SECRET ?? fail('TARGET_CLIENT_SECRET', 'is required when TARGET_AUTH is client-secret');
      return { kind, fhirUrl, auth: { mode, tokenUrl: s.TARGET_TOKEN_URL, clientId, clientSecret, scopes: s.TARGET_SCOPES }, bundles };
    }
    case 'smart-backend': {
      const clientId = s.TARGET_CLIENT_ID ?? fail('TARGET_CLIENT_ID', 'is required when TARGET_AUTH is smart-backend');
      const privateKey = s.TARGET_PRIVATE_KEY ?? fail('TARGET_PRIVATE_KEY', 'is required when TARGET_AUTH is smart-backend');
      const keyId =
        s.TARGET_KEY_ID ??
        fail('TARGET_KEY_ID', 'is required when TARGET_AUTH is smart-backend: the kid of the key in the JWKS the target knows');
      const algorithm =
        assertionAlgorithm(privateKey) ??
        fail('TARGET_PRIVATE_KEY', 'must be an RSA or EC P-384 private key as PEM or JWK JSON (RS384 or ES384)');
      return {
        kind,
        fhirUrl,
        auth: { mode, tokenUrl: s.TARGET_TOKEN_URL, clientId, privateKey, keyId, algorithm, scopes: s.TARGET_SCOPES },
        bundles,
      };
    }
  }
}

/** RS384 for an RSA key, ES384 for an EC P-384 key, undefined for anything else. */
export function assertionAlgorithm(value: string): 'RS384' | 'ES384' | undefined {
  try {
    const trimmed = value.trim();
    const key = trimmed.startsWith('{')
      ? createPrivateKey({ key: JSON.parse(trimmed) as import('node:crypto').JsonWebKey, format: 'jwk' })
      : createPrivateKey(trimmed.replace(/\\n/g, '\n'));
    if (key.asymmetricKeyType === 'rsa') return 'RS384';
    if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'secp384r1') return 'ES384';
    return undefined;
  } catch {
    return undefined;
  }
}
