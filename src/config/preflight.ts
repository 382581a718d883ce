import type { TokenCredential } from '@azure/identity';
import { UpstreamError } from '../http/errors';
import type { Config } from './load';

/**
 * The AHDS side checked before any run depends on it: one Entra token request for the FHIR
 * audience, then one `GET /Patient?_summary=count` (a count, never a resource) which needs the URL
 * right, the token's audience accepted and a FHIR data role on the service. Each failure is told
 * as its real cause, naming the setting to fix: an untrusted or unreachable authority is not "AHDS
 * down", a wrong secret is not "run again when it is back".
 */
export interface AhdsCheck {
  ok: boolean;
  /** What was checked and how it went, one line each (no token, no secret, no resource data). */
  steps: Array<{ step: 'entra-token' | 'fhir-access'; ok: boolean; message: string; setting?: string }>;
}

/** One sentence for an Entra token failure, naming the setting behind it. */
export function describeEntraError(error: unknown, auth: Config['azureAuth']): { setting: string; message: string } {
  const text = `${(error as Error)?.name ?? ''} ${(error as Error)?.message ?? String(error)}`;
  const authority = auth.authorityHost ?? 'https://login.microsoftonline.com';
  if (/endpoints_resolution_error|self[- ]signed|UNABLE_TO_VERIFY|unable to verify|certificate/i.test(text)) {
    return {
      setting: 'AZURE_AUTHORITY_HOST',
      message: `Entra ID at ${authority} could not be reached or its TLS certificate is not trusted (for the local stack, run through scripts/with-local-ca.js, as npm run sync does; elsewhere check AZURE_AUTHORITY_HOST and the network).`,
    };
  }
  if (/AADSTS7000215|AADSTS7000222|invalid client secret/i.test(text)) {
    return {
      setting: 'AZURE_CLIENT_SECRET',
      message:
        'Entra ID refused the client secret: AZURE_CLIENT_SECRET is wrong or expired for AZURE_CLIENT_ID (use the secret value, not its id).',
    };
  }
  if (/AADSTS700016|AADSTS7000218/i.test(text)) {
    return {
      setting: 'AZURE_CLIENT_ID',
      message:
        "Entra ID does not know AZURE_CLIENT_ID in AZURE_TENANT_ID: check both (the app registration, or the managed identity's client id).",
    };
  }
  if (/AADSTS500011|AADSTS1002012|invalid_scope|resource principal/i.test(text)) {
    return {
      setting: 'AHDS_AUDIENCE',
      message: 'Entra ID has no resource for the FHIR audience: AHDS_AUDIENCE (or AHDS_FHIR_URL, its default) is not the FHIR service URL.',
    };
  }
  if (/AADSTS90002|AADSTS900023|tenant/i.test(text)) {
    return {
      setting: 'AZURE_TENANT_ID',
      message: 'Entra ID does not know AZURE_TENANT_ID: set the directory (tenant) id of the FHIR service.',
    };
  }
  if (/ManagedIdentityCredential|CredentialUnavailable|managed identity/i.test(text)) {
    return {
      setting: 'AZURE_AUTH_MODE',
      message: `No ${auth.mode === 'managed-identity' ? 'managed identity is available here' : 'credential was found'} (AZURE_AUTH_MODE=${auth.mode}): outside Azure use client-secret or default (az login); in Azure check AZURE_CLIENT_ID names the identity attached to the app.`,
    };
  }
  return {
    setting: 'AZURE_AUTH_MODE',
    message: `Entra ID gave no token for the FHIR service (${((error as Error)?.name ?? 'Error').slice(0, 60)}): check AZURE_AUTH_MODE, AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_AUTHORITY_HOST.`,
  };
}

/** One sentence for a failed FHIR access with a good token. */
export function describeFhirAccessError(error: unknown, ahds: Config['ahds']): { setting: string; message: string } {
  if (error instanceof UpstreamError) {
    if (error.code === 'AuthenticationFailed')
      return {
        setting: 'AHDS_AUDIENCE',
        message: `The FHIR service refused the token (401): its audience ${ahds.audience} is not the service's (set AHDS_AUDIENCE, or AHDS_FHIR_URL to the service URL).`,
      };
    if (error.code === 'Forbidden')
      return {
        setting: 'AZURE_CLIENT_ID',
        message:
          'The FHIR service answered 403: the identity has no FHIR Data Writer role on the service (assign it, then allow a few minutes).',
      };
    if (error.code === 'NotFound')
      return { setting: 'AHDS_FHIR_URL', message: `AHDS_FHIR_URL (${ahds.fhirUrl}) answers 404: it is not a FHIR service base URL.` };
    if (error.isOutage)
      return {
        setting: 'AHDS_FHIR_URL',
        message: `The FHIR service at ${ahds.fhirUrl} is unreachable or unavailable (${error.message}); if it persists, check AHDS_FHIR_URL.`,
      };
    return { setting: 'AHDS_FHIR_URL', message: `The FHIR service at ${ahds.fhirUrl} refused the check: ${error.message}` };
  }
  return {
    setting: 'AHDS_FHIR_URL',
    message: `The FHIR service at ${ahds.fhirUrl} could not be checked (${(error as Error)?.name ?? 'Error'}).`,
  };
}

export interface AhdsProbe {
  credential: TokenCredential;
  /** GET on the FHIR service with the connector's client (token, retries, telemetry). */
  get(path: string, params: Record<string, string>): Promise<unknown>;
}

export async function checkAhds(config: Pick<Config, 'ahds' | 'azureAuth'>, probe: AhdsProbe): Promise<AhdsCheck> {
  const steps: AhdsCheck['steps'] = [];
  try {
    const token = await probe.credential.getToken(`${config.ahds.audience.replace(/\/+$/, '')}/.default`);
    if (!token) throw new Error('no token');
    steps.push({ step: 'entra-token', ok: true, message: 'Entra ID issued a token for the FHIR service.' });
  } catch (error) {
    const d = describeEntraError(error, config.azureAuth);
    steps.push({ step: 'entra-token', ok: false, ...d });
    return { ok: false, steps };
  }
  try {
    await probe.get('/Patient', { _summary: 'count' });
    steps.push({ step: 'fhir-access', ok: true, message: 'The FHIR service accepted the token and the role (a Patient count).' });
  } catch (error) {
    steps.push({ step: 'fhir-access', ok: false, ...describeFhirAccessError(error, config.ahds) });
  }
  return { ok: steps.every((s) => s.ok), steps };
}
