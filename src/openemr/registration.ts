import { randomUUID } from 'node:crypto';
import axios from 'axios';
import { exportJWK, exportPKCS8, generateKeyPair, type JWK } from 'jose';
import { z } from 'zod';
import { ASSERTION_ALG } from './assertion';

export const DEFAULT_REGISTRATION_SCOPES = 'system/Patient.read system/Observation.read system/Patient.rs system/Observation.rs system/*.$export system/*.$bulkdata-status system/Binary.read';

export interface RegistrationResult {
  clientId: string;
  /** PKCS#8 PEM: store it in Key Vault, never in source control. */
  privateKeyPem: string;
  jwks: { keys: JWK[] };
  keyId: string;
  registrationClientUri?: string;
}

const registrationAnswer = z.looseObject({
  client_id: z.string().min(1),
  registration_client_uri: z.string().optional(),
});

/**
 * Registers the connector as a confidential SMART Backend Services client with OpenEMR
 * (RFC 7591 dynamic registration): a fresh RS384 key pair, its public JWKS sent inline. OpenEMR
 * creates the client disabled; an administrator enables it afterwards.
 */
export async function registerOpenEmrClient(options: { baseUrl: string; site?: string; clientName?: string; scopes?: string; contact?: string }): Promise<RegistrationResult> {
  const site = options.site ?? 'default';
  const { publicKey, privateKey } = await generateKeyPair(ASSERTION_ALG, { extractable: true, modulusLength: 2048 });
  const keyId = randomUUID();
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid: keyId, alg: ASSERTION_ALG, use: 'sig' };
  const jwks = { keys: [publicJwk] };
  const url = `${options.baseUrl.replace(/\/+$/, '')}/oauth2/${site}/registration`;
  const response = await axios.post(
    url,
    {
      application_type: 'private',
      client_name: options.clientName ?? 'OpenEMR to AHDS FHIR sync',
      token_endpoint_auth_method: 'private_key_jwt',
      grant_types: ['client_credentials'],
      redirect_uris: ['https://localhost/unused'],
      contacts: options.contact ? [options.contact] : [],
      scope: options.scopes ?? DEFAULT_REGISTRATION_SCOPES,
      jwks,
    },
    { headers: { 'Content-Type': 'application/json' }, validateStatus: () => true, timeout: 30_000 },
  );
  if (response.status >= 300) {
    const detail = typeof response.data === 'object' && response.data && 'error' in response.data ? ` (${String((response.data as { error: unknown }).error)})` : '';
    throw new Error(`OpenEMR refused the registration with ${response.status}${detail} at ${url}.`);
  }
  const parsed = registrationAnswer.safeParse(response.data);
  if (!parsed.success) throw new Error(`OpenEMR answered the registration without a client_id at ${url}.`);
  return { clientId: parsed.data.client_id, privateKeyPem: await exportPKCS8(privateKey), jwks, keyId, registrationClientUri: parsed.data.registration_client_uri };
}
