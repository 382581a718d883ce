import axios from 'axios';
import { exportJWK, exportPKCS8, generateKeyPair, type JWK } from 'jose';
import { z } from 'zod';
import { ASSERTION_ALG, publicKeyThumbprint } from './assertion';
import { diagnoseOpenEmrAnswer } from './auth-diagnosis';
import { OPTIONAL_SCOPES, readScopesOf } from './scopes';
import { DEFAULT_RESOURCE_TYPES } from '../sync/resource-types';

const DEFAULT_READ_SCOPES = readScopesOf(DEFAULT_RESOURCE_TYPES.split(','));
/**
 * SMART v1 scopes: every OpenEMR release knows them (with system scopes enabled). A read scope for
 * each type carried by default, so the connector's default OPENEMR_SCOPES are all granted.
 */
export const V1_REGISTRATION_SCOPES = [...DEFAULT_READ_SCOPES, ...OPTIONAL_SCOPES].join(' ');
/** 7.0.4+ also knows the SMART v2 `.rs` scopes, so OPENEMR_SCOPES may use either. */
export const DEFAULT_REGISTRATION_SCOPES = [
  ...DEFAULT_READ_SCOPES,
  ...DEFAULT_READ_SCOPES.map((s) => s.replace(/\.read$/, '.rs')),
  ...OPTIONAL_SCOPES,
].join(' ');

export interface RegistrationResult {
  clientId: string;
  /** PKCS#8 PEM: store it in Key Vault, never in source control. */
  privateKeyPem: string;
  jwks: { keys: JWK[] };
  /** The JWKS key's kid: the RFC 7638 thumbprint, which the connector sends without OPENEMR_KEY_ID. */
  keyId: string;
  registrationClientUri?: string;
  /** What /metadata reported, when it answered. */
  softwareVersion?: string;
  /** How the client was registered: private_key_jwt (7.0.4+), or without a method (7.0.2/7.0.3 refuse private_key_jwt). */
  tokenEndpointAuthMethod: 'private_key_jwt' | 'omitted';
  scopes: string;
}

const registrationAnswer = z.looseObject({
  client_id: z.string().min(1),
  registration_client_uri: z.string().optional(),
});
const metadataAnswer = z.looseObject({ software: z.looseObject({ version: z.string() }).optional() });

/**
 * Does this release accept `token_endpoint_auth_method: private_key_jwt` and `.rs` scopes? From
 * 7.0.4 on (AuthorizationController.php:276, ServerScopeListEntity.php:171); 7.0.2 and 7.0.3 answer
 * 400 invalid_client_metadata and invalid_scope. Unknown versions count as new.
 */
export function acceptsPrivateKeyJwt(softwareVersion: string | undefined): boolean {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(softwareVersion ?? '');
  if (!m) return true;
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return major > 7 || (major === 7 && (minor > 0 || patch >= 4));
}

/**
 * Registers the connector as a confidential SMART Backend Services client with OpenEMR
 * (RFC 7591 dynamic registration): a fresh RS384 key pair, its public JWKS sent inline with the
 * key's thumbprint as kid. The release is read from /metadata first: 7.0.4+ gets
 * `private_key_jwt` and v1+v2 scopes; 7.0.2/7.0.3 get no method (they accept only client secret
 * methods, and ignore the method for a JWT assertion grant) and v1 scopes. OpenEMR creates the
 * client disabled; an administrator enables it afterwards. OpenEMR's answer also carries a
 * client_secret, which this client never uses and which is not kept.
 */
export async function registerOpenEmrClient(options: {
  baseUrl: string;
  site?: string;
  clientName?: string;
  scopes?: string;
  contact?: string;
}): Promise<RegistrationResult> {
  const site = options.site ?? 'default';
  const root = options.baseUrl.replace(/\/+$/, '');
  const metadataUrl = `${root}/apis/${site}/fhir/metadata`;
  const metadata = await axios.get(metadataUrl, { headers: { Accept: 'application/json' }, validateStatus: () => true, timeout: 30_000 });
  const settingProblem = diagnoseOpenEmrAnswer(
    { status: metadata.status, body: metadata.data },
    { url: metadataUrl, site, scopesSetting: '--scopes' },
  );
  if (settingProblem)
    throw new Error(
      settingProblem.replace('OPENEMR_SITE', '--site (OPENEMR_SITE)').replace('OPENEMR_BASE_URL', '--base-url (OPENEMR_BASE_URL)'),
    );
  const softwareVersion = metadata.status === 200 ? metadataAnswer.safeParse(metadata.data).data?.software?.version : undefined;
  const modern = acceptsPrivateKeyJwt(softwareVersion);
  const scopes = options.scopes ?? (modern ? DEFAULT_REGISTRATION_SCOPES : V1_REGISTRATION_SCOPES);

  const { publicKey, privateKey } = await generateKeyPair(ASSERTION_ALG, { extractable: true, modulusLength: 2048 });
  const keyId = await publicKeyThumbprint(publicKey);
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid: keyId, alg: ASSERTION_ALG, use: 'sig' };
  const jwks = { keys: [publicJwk] };
  const url = `${root}/oauth2/${site}/registration`;
  const response = await axios.post(
    url,
    {
      application_type: 'private',
      client_name: options.clientName ?? 'OpenEMR to AHDS FHIR sync',
      ...(modern ? { token_endpoint_auth_method: 'private_key_jwt' } : {}),
      grant_types: ['client_credentials'],
      redirect_uris: ['https://localhost/unused'],
      contacts: options.contact ? [options.contact] : [],
      scope: scopes,
      jwks,
    },
    { headers: { 'Content-Type': 'application/json' }, validateStatus: () => true, timeout: 30_000 },
  );
  if (response.status >= 300) {
    const sentence = diagnoseOpenEmrAnswer({ status: response.status, body: response.data }, { url, site, scopesSetting: '--scopes' });
    if (sentence)
      throw new Error(
        sentence.replace('OPENEMR_SITE', '--site (OPENEMR_SITE)').replace('OPENEMR_BASE_URL', '--base-url (OPENEMR_BASE_URL)'),
      );
    const detail =
      typeof response.data === 'object' && response.data && 'error' in response.data
        ? ` (${String((response.data as { error: unknown }).error)})`
        : '';
    throw new Error(
      `OpenEMR${softwareVersion ? ` ${softwareVersion}` : ''} refused the registration with ${response.status}${detail} at ${url}.`,
    );
  }
  const parsed = registrationAnswer.safeParse(response.data);
  if (!parsed.success) throw new Error(`OpenEMR answered the registration without a client_id at ${url}.`);
  return {
    clientId: parsed.data.client_id,
    privateKeyPem: await exportPKCS8(privateKey),
    jwks,
    keyId,
    registrationClientUri: parsed.data.registration_client_uri,
    softwareVersion,
    tokenEndpointAuthMethod: modern ? 'private_key_jwt' : 'omitted',
    scopes,
  };
}
