import { createPrivateKey } from 'node:crypto';
import axios from 'axios';
import { importJWK, SignJWT, type JWK, type KeyLike } from 'jose';
import { z } from 'zod';
import { normalisePrivateKey } from '../config/load';
import type { TokenSource } from '../http/client';
import { UpstreamError } from '../http/errors';
import { assertionClaims, CLIENT_ASSERTION_TYPE } from '../openemr/assertion';
import type { TargetConfig } from './config';

type OAuthAuth = Extract<TargetConfig['auth'], { mode: 'client-secret' | 'smart-backend' }>;

const tokenAnswer = z.object({ access_token: z.string().min(1), expires_in: z.coerce.number().optional() });
const smartConfiguration = z.object({ token_endpoint: z.string().url() });

/** The one line start-up prints when the target takes writes without authentication. */
export function noAuthWarning(fhirUrl: string): string {
  const host = new URL(fhirUrl).host;
  return `WARNING: TARGET_AUTH=none: the connector writes to ${host} WITHOUT AUTHENTICATION. Allowed only on loopback and private networks; use smart-backend or client-secret anywhere else.`;
}

/**
 * Bearer tokens from an OAuth 2.0 token endpoint with the client_credentials grant: a SMART Backend
 * Services client assertion (RS384 or ES384, with kid) or a client secret (HTTP Basic). Tokens are
 * cached until two minutes before they expire; one request at a time fetches a new one.
 */
export class OAuthTokenSource implements TokenSource {
  private cached?: { token: string; expiresAt: number };
  private pending?: Promise<string>;
  private key?: Promise<KeyLike>;

  constructor(
    private readonly auth: OAuthAuth,
    private readonly fhirUrl: string,
    private readonly options: { timeoutMs: number; now?: () => number } = { timeoutMs: 30_000 },
  ) {}

  async getToken(): Promise<string> {
    const now = this.options.now?.() ?? Date.now();
    if (this.cached && this.cached.expiresAt - 120_000 > now) return this.cached.token;
    this.pending ??= this.requestToken().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  invalidate(): void {
    this.cached = undefined;
  }

  private tokenUrl?: string;

  /** TARGET_TOKEN_URL, or the token_endpoint of the server's SMART configuration. */
  async resolveTokenUrl(): Promise<string> {
    if (this.auth.tokenUrl) return this.auth.tokenUrl;
    if (this.tokenUrl) return this.tokenUrl;
    const url = `${this.fhirUrl}/.well-known/smart-configuration`;
    try {
      const res = await axios.get(url, { timeout: this.options.timeoutMs, headers: { Accept: 'application/json' } });
      this.tokenUrl = smartConfiguration.parse(res.data).token_endpoint;
      return this.tokenUrl;
    } catch {
      throw new UpstreamError(
        'ahds',
        'Failed',
        'The target has no usable /.well-known/smart-configuration token_endpoint: set TARGET_TOKEN_URL.',
      );
    }
  }

  private async requestToken(): Promise<string> {
    const tokenUrl = await this.resolveTokenUrl();
    const form = new URLSearchParams({ grant_type: 'client_credentials', scope: this.auth.scopes });
    const headers: Record<string, string> = { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' };
    if (this.auth.mode === 'smart-backend') {
      form.set('client_assertion_type', CLIENT_ASSERTION_TYPE);
      form.set('client_assertion', await this.sign(tokenUrl));
    } else {
      // RFC 6749 2.3.1: client id and secret form-urlencoded, then Basic.
      const basic = `${encodeURIComponent(this.auth.clientId)}:${encodeURIComponent(this.auth.clientSecret)}`;
      headers.Authorization = `Basic ${Buffer.from(basic).toString('base64')}`;
    }
    let data: unknown;
    try {
      data = (await axios.post(tokenUrl, form.toString(), { headers, timeout: this.options.timeoutMs })).data;
    } catch (error) {
      const status = axios.isAxiosError(error) ? error.response?.status : undefined;
      // The answer's body may quote what was sent: only the status is kept.
      throw new UpstreamError(
        'ahds',
        status === 400 || status === 401 ? 'AuthenticationFailed' : 'Failed',
        `The target's token endpoint refused the client_credentials request${status ? ` (${status})` : ''}.`,
        status,
      );
    }
    const parsed = tokenAnswer.safeParse(data);
    if (!parsed.success)
      throw new UpstreamError('ahds', 'InvalidResponse', "The target's token endpoint answered without an access_token.");
    const now = this.options.now?.() ?? Date.now();
    this.cached = { token: parsed.data.access_token, expiresAt: now + (parsed.data.expires_in ?? 300) * 1000 };
    return parsed.data.access_token;
  }

  private async sign(tokenUrl: string): Promise<string> {
    const auth = this.auth as Extract<OAuthAuth, { mode: 'smart-backend' }>;
    this.key ??= importKey(auth.privateKey, auth.algorithm);
    const claims = assertionClaims(auth.clientId, tokenUrl, Math.floor((this.options.now?.() ?? Date.now()) / 1000));
    return new SignJWT({ ...claims }).setProtectedHeader({ alg: auth.algorithm, typ: 'JWT', kid: auth.keyId }).sign(await this.key);
  }
}

async function importKey(value: string, alg: 'RS384' | 'ES384'): Promise<KeyLike> {
  const key = normalisePrivateKey(value);
  if (key.kind === 'jwk') return (await importJWK({ ...(key.jwk as unknown as JWK), alg }, alg)) as KeyLike;
  return createPrivateKey(key.pem);
}
