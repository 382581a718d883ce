import type { KeyLike } from 'jose';
import type { AxiosResponse } from 'axios';
import { z } from 'zod';
import type { Config } from '../config/load';
import { createHttpClient, type TokenSource } from '../http/client';
import { UpstreamError } from '../http/errors';
import { DEPENDENCIES } from '../telemetry/names';
import type { Telemetry } from '../telemetry/telemetry';
import { assertionClaims, CLIENT_ASSERTION_TYPE, importSigningKey, signClientAssertion, signingKeyId } from './assertion';
import { diagnoseOpenEmrAnswer } from './auth-diagnosis';
import { tokenResponseSchema } from './schemas';
import { scopeReads } from './scopes';
import { KNOWN_RESOURCE_TYPES } from '../sync/resource-types';

/** Renew this long before expiry at most: a token must outlive the request it is put on. */
const MAX_RENEW_MARGIN_MS = 60_000;

/**
 * How long before expiry a token is renewed: a fifth of its lifetime, at most a minute. OpenEMR's
 * 300 s tokens renew a minute early; a 60 s token 12 s early instead of never being reused.
 */
export function renewMarginMs(lifetimeSeconds: number): number {
  return Math.min(MAX_RENEW_MARGIN_MS, (lifetimeSeconds * 1000) / 5);
}

const smartConfigurationSchema = z.looseObject({ token_endpoint: z.string().url() });

/** 4xx answers come back as responses (their bodies say which setting is wrong); the rest throw and are retried. */
const keepRefusals = (status: number) => status < 500 && status !== 408 && status !== 429;

/**
 * SMART Backend Services tokens for OpenEMR: a fresh RS384 client assertion per request (OpenEMR
 * rejects a reused jti), the token cached until shortly before it expires, and a single renewal in
 * flight however many readers ask at once.
 *
 * The assertion's `aud` is the `token_endpoint` of `{FHIR base}/.well-known/smart-configuration`:
 * OpenEMR compares it exactly with a URL built from its `site_addr_oath` global, which behind a
 * TLS-offloading proxy is not the URL the connector is configured with (e.g. `http://` instead of
 * `https://`). The request itself still goes to the configured token URL, the one that is reachable.
 */
export class SmartBackendTokenProvider implements TokenSource {
  private cached?: { token: string; expiresAt: number; marginMs: number };
  private pending?: Promise<string>;
  private key?: Promise<{ key: KeyLike; kid: string }>;
  private audience?: Promise<string>;
  private readonly http;

  constructor(
    private readonly settings: Config['openemr'] & { privateKey: string },
    httpSettings: Config['http'],
    private readonly telemetry: Telemetry,
    private readonly now: () => number = Date.now,
    /** Where the one-time notice about a differing token endpoint goes. */
    private readonly warn: (message: string) => void = (m) => console.warn(m),
  ) {
    this.http = createHttpClient({
      side: 'openemr',
      baseURL: settings.tokenUrl,
      timeoutMs: httpSettings.timeoutMs,
      retry: httpSettings.retry,
      telemetry,
      dependencyName: DEPENDENCIES.openemrAuth,
      beforeRetry: async (config) => {
        // Only the token POST carries a body: a retry gets a fresh assertion (new jti).
        if (config.method === 'post') config.data = await this.formBody(await this.tokenAudience());
      },
    });
  }

  async getToken(): Promise<string> {
    if (this.cached && this.cached.expiresAt - this.cached.marginMs > this.now()) return this.cached.token;
    this.pending ??= this.requestToken().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  invalidate(): void {
    this.cached = undefined;
  }

  /** The `aud` OpenEMR expects, from discovery (once; a failed discovery is tried again next time). */
  tokenAudience(): Promise<string> {
    this.audience ??= this.discoverAudience().catch((error: unknown) => {
      this.audience = undefined;
      throw error;
    });
    return this.audience;
  }

  private async discoverAudience(): Promise<string> {
    const url = `${this.settings.fhirBaseUrl}/.well-known/smart-configuration`;
    const response = await this.http.get(url, { headers: { Accept: 'application/json' }, validateStatus: keepRefusals });
    this.refuseOnSettings(response, url);
    const parsed = smartConfigurationSchema.safeParse(response.data);
    if (response.status !== 200 || !parsed.success) {
      this.warn(
        `OpenEMR's ${url} answered ${response.status} without a token_endpoint: the client assertion's audience is ${this.settings.tokenUrl}, built from OPENEMR_BASE_URL.`,
      );
      return this.settings.tokenUrl;
    }
    const discovered = parsed.data.token_endpoint;
    if (discovered !== this.settings.tokenUrl) {
      this.warn(
        `OpenEMR names its token endpoint ${discovered}, not ${this.settings.tokenUrl} (built from OPENEMR_BASE_URL): the client assertion's audience uses OpenEMR's value, because OpenEMR compares it exactly; it comes from OpenEMR's site_addr_oath global (Administration > Globals > Connectors), which should hold the public URL${discovered.startsWith('http://') && this.settings.tokenUrl.startsWith('https://') ? ' (behind a TLS-offloading proxy it is guessed as http://)' : ''}.`,
      );
    }
    return discovered;
  }

  private async signingKey(): Promise<{ key: KeyLike; kid: string }> {
    this.key ??= Promise.all([
      importSigningKey(this.settings.privateKey),
      signingKeyId(this.settings.privateKey, this.settings.keyId),
    ]).then(([key, kid]) => ({ key, kid }));
    return this.key;
  }

  private async formBody(audience: string): Promise<string> {
    const { key, kid } = await this.signingKey();
    const claims = assertionClaims(this.settings.clientId, audience, Math.floor(this.now() / 1000));
    const assertion = await signClientAssertion(claims, key, kid);
    return new URLSearchParams({
      grant_type: 'client_credentials',
      client_assertion_type: CLIENT_ASSERTION_TYPE,
      client_assertion: assertion,
      scope: this.settings.scopes,
    }).toString();
  }

  private async requestToken(): Promise<string> {
    const audience = await this.tokenAudience();
    const response = await this.http.post('', await this.formBody(audience), {
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      validateStatus: keepRefusals,
    });
    if (response.status !== 200) throw this.describeRefusal(response, audience);
    const parsed = tokenResponseSchema.safeParse(response.data);
    if (!parsed.success) {
      throw new UpstreamError(
        'openemr',
        'InvalidResponse',
        'OpenEMR token endpoint answered without a usable access token.',
        response.status,
      );
    }
    const missing = missingRequiredScopes(this.settings.scopes, parsed.data.scope);
    if (missing.length > 0) {
      // Scopes OpenEMR knows but the client was not registered for are dropped silently; say so now rather than 401 on every read.
      this.telemetry.authFailure('openemr', `scopes not granted: ${missing.join(' ')}`);
    }
    const lifetime = parsed.data.expires_in;
    this.cached = { token: parsed.data.access_token, expiresAt: this.now() + lifetime * 1000, marginMs: renewMarginMs(lifetime) };
    return parsed.data.access_token;
  }

  /** A 4xx that names a wrong setting (site, base URL, switched-off API, unknown scope) stops here with that sentence. */
  private refuseOnSettings(response: AxiosResponse, url: string): void {
    const sentence = diagnoseOpenEmrAnswer(
      { status: response.status, body: response.data },
      { url, site: this.settings.site, scopesSetting: 'OPENEMR_SCOPES' },
    );
    if (!sentence) return;
    this.telemetry.authFailure('openemr', `${response.status} ${errorCode(response.data) ?? 'refused'} at ${url}`);
    // Not 'NotFound': nothing is missing at the source, a setting is wrong (the functions answer 502).
    throw new UpstreamError('openemr', 'InvalidResponse', sentence, response.status, 1, errorCode(response.data));
  }

  private describeRefusal(response: AxiosResponse, audience: string): Error {
    this.refuseOnSettings(response, this.settings.tokenUrl);
    const detail = errorCode(response.data);
    this.telemetry.authFailure('openemr', `token request refused (${response.status}${detail ? ` ${detail}` : ''})`);
    if (response.status === 400 || response.status === 401) {
      const audienceHint =
        response.status === 400 && detail === 'invalid_client'
          ? `, and that ${audience} is the token URL OpenEMR expects as the assertion's audience`
          : '';
      return new UpstreamError(
        'openemr',
        'AuthenticationFailed',
        `OpenEMR refused the client credentials with ${response.status}${detail ? ` (${detail})` : ''}: check that the client is enabled, registered with this key's JWKS, and that system scopes are enabled${audienceHint}.`,
        response.status,
        1,
        detail,
      );
    }
    return new UpstreamError(
      'openemr',
      'BadRequest',
      `OpenEMR refused the token request with ${response.status}${detail ? ` (${detail})` : ''}.`,
      response.status,
      1,
      detail,
    );
  }
}

/** The OAuth error code of an answer, when it is one (never free text). */
function errorCode(body: unknown): string | undefined {
  const error = (body as { error?: unknown } | undefined)?.error;
  return typeof error === 'string' && /^[a-z_]{3,40}$/.test(error) ? error : undefined;
}

/**
 * Requested resource read scopes (any type the connector knows) that the token lacks. Bulk export
 * scopes are optional (the connector falls back to search), so their absence is no failure.
 */
export function missingRequiredScopes(requested: string, granted: string | undefined): string[] {
  if (granted === undefined) return [];
  const have = new Set(granted.split(/\s+/).filter(Boolean));
  return requested
    .split(/\s+/)
    .filter((s) => KNOWN_RESOURCE_TYPES.some((type) => scopeReads(s, type)) && !s.startsWith('system/*.'))
    .filter((s) => !have.has(s));
}
