import type { KeyLike } from 'jose';
import type { Config } from '../config/load';
import { createHttpClient, type TokenSource } from '../http/client';
import { UpstreamError } from '../http/errors';
import { DEPENDENCIES } from '../telemetry/names';
import type { Telemetry } from '../telemetry/telemetry';
import { assertionClaims, CLIENT_ASSERTION_TYPE, importSigningKey, signClientAssertion } from './assertion';
import { tokenResponseSchema } from './schemas';

/** Renew this long before expiry: a token must outlive the request it is put on. */
const RENEW_MARGIN_MS = 60_000;

/**
 * SMART Backend Services tokens for OpenEMR: a fresh RS384 client assertion per request (OpenEMR
 * rejects a reused jti), the token cached until shortly before its 300 s lifetime ends, and a
 * single renewal in flight however many readers ask at once.
 */
export class SmartBackendTokenProvider implements TokenSource {
  private cached?: { token: string; expiresAt: number };
  private pending?: Promise<string>;
  private key?: Promise<KeyLike>;
  private readonly http;

  constructor(
    private readonly settings: Config['openemr'] & { privateKey: string },
    httpSettings: Config['http'],
    private readonly telemetry: Telemetry,
    private readonly now: () => number = Date.now,
  ) {
    this.http = createHttpClient({
      side: 'openemr',
      baseURL: settings.tokenUrl,
      timeoutMs: httpSettings.timeoutMs,
      retry: httpSettings.retry,
      telemetry,
      dependencyName: DEPENDENCIES.openemrAuth,
      beforeRetry: async (config) => {
        config.data = await this.formBody();
      },
    });
  }

  async getToken(): Promise<string> {
    if (this.cached && this.cached.expiresAt - RENEW_MARGIN_MS > this.now()) return this.cached.token;
    this.pending ??= this.requestToken().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  invalidate(): void {
    this.cached = undefined;
  }

  private async formBody(): Promise<string> {
    this.key ??= importSigningKey(this.settings.privateKey);
    const claims = assertionClaims(this.settings.clientId, this.settings.tokenUrl, Math.floor(this.now() / 1000));
    const assertion = await signClientAssertion(claims, await this.key, this.settings.keyId);
    return new URLSearchParams({
      grant_type: 'client_credentials',
      client_assertion_type: CLIENT_ASSERTION_TYPE,
      client_assertion: assertion,
      scope: this.settings.scopes,
    }).toString();
  }

  private async requestToken(): Promise<string> {
    let response;
    try {
      response = await this.http.post('', await this.formBody(), {
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      });
    } catch (error) {
      throw this.describeFailure(error);
    }
    const parsed = tokenResponseSchema.safeParse(response.data);
    if (!parsed.success) {
      throw new UpstreamError('openemr', 'InvalidResponse', 'OpenEMR token endpoint answered without a usable access token.', response.status);
    }
    const missing = missingRequiredScopes(this.settings.scopes, parsed.data.scope);
    if (missing.length > 0) {
      // OpenEMR drops scopes the client lacks silently; say so now rather than 401 on every read.
      this.telemetry.authFailure('openemr', `scopes not granted: ${missing.join(' ')}`);
    }
    this.cached = { token: parsed.data.access_token, expiresAt: this.now() + parsed.data.expires_in * 1000 };
    return parsed.data.access_token;
  }

  private describeFailure(error: unknown): Error {
    if (error instanceof UpstreamError && (error.statusCode === 400 || error.statusCode === 401)) {
      this.telemetry.authFailure('openemr', `token request refused (${error.statusCode}${error.detail ? ` ${error.detail}` : ''})`);
      return new UpstreamError(
        'openemr',
        'AuthenticationFailed',
        `OpenEMR refused the client credentials with ${error.statusCode}${error.detail ? ` (${error.detail})` : ''}: check that the client is enabled, registered with this key's JWKS, and that system scopes are enabled.`,
        error.statusCode,
        error.attempts,
        error.detail,
      );
    }
    return error instanceof Error ? error : new Error(String(error));
  }
}

/**
 * Requested read scopes for Patient and Observation that the token lacks. Bulk export scopes are
 * optional (the connector falls back to search), so their absence is no failure.
 */
export function missingRequiredScopes(requested: string, granted: string | undefined): string[] {
  if (granted === undefined) return [];
  const have = new Set(granted.split(/\s+/).filter(Boolean));
  return requested
    .split(/\s+/)
    .filter((s) => /^system\/(Patient|Observation)\.(read|rs)$/.test(s))
    .filter((s) => !have.has(s));
}
