/**
 * OpenEMR's OAuth2 server as far as a SMART Backend Services client sees it: client_credentials
 * only with an RS384 JWT client assertion (never a client secret), admin-enabled clients, single-use
 * jti, opaque short-lived access tokens with no refresh. Checks follow
 * src/Services/JWTClientAuthenticationService.php (see shared/reference/OPENEMR-API.md).
 */
import { randomBytes } from 'node:crypto';
import { compactVerify, decodeJwt, importJWK, JWK, JWTPayload, KeyLike } from 'jose';
import { oauthError } from './openemr-responses';
import { ServerClock } from './server-clock';

export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const LEEWAY_SECONDS = 60;
const MAX_EXP_AHEAD_SECONDS = 24 * 3600;
const MAX_IAT_AGE_SECONDS = 5 * 60;

export interface RegisteredClient {
  clientId: string;
  clientName: string;
  jwks?: { keys: JWK[] };
  jwksUri?: string;
  scopes: string[];
  enabled: boolean;
}

export interface AccessToken {
  clientId: string;
  scopes: Set<string>;
  expiresAtMs: number;
}

export interface OAuthAnswer {
  status: number;
  body: unknown;
}

export type Authentication = { ok: true; token: AccessToken } | { ok: false; hint: string };

export class OAuthServer {
  private readonly clients = new Map<string, RegisteredClient>();
  private readonly tokens = new Map<string, AccessToken>();
  /** jti -> epoch seconds until which it must be remembered. */
  private readonly usedJtis = new Map<string, number>();
  private readonly keys = new Map<string, KeyLike | Uint8Array | null>();

  constructor(
    private readonly opts: {
      clock: ServerClock;
      /** The exact URL `aud` must contain. */
      tokenUrl: string;
      /** Lifetime for a token issued now (fault profile overrides are read at issue time). */
      tokenLifetimeSeconds: () => number;
      /** Every scope the server knows (ScopeRepository); others are 400 invalid_scope. */
      knownScopes: ReadonlySet<string>;
      /** Registration accepts token_endpoint_auth_method private_key_jwt (7.0.4+). */
      registrationPrivateKeyJwt: boolean;
    },
  ) {}

  registerClient(opts: {
    jwks?: { keys: JWK[] };
    jwksUri?: string;
    scopes: string | string[];
    enabled?: boolean;
    clientName?: string;
    clientId?: string;
  }): RegisteredClient {
    const client: RegisteredClient = {
      clientId: opts.clientId ?? randomBytes(32).toString('base64url'),
      clientName: opts.clientName ?? 'stand-in client',
      jwks: opts.jwks,
      jwksUri: opts.jwksUri,
      scopes: splitScopes(opts.scopes),
      enabled: opts.enabled ?? false,
    };
    this.clients.set(client.clientId, client);
    this.keys.delete(client.clientId);
    return client;
  }

  getClient(clientId: string): RegisteredClient | undefined {
    return this.clients.get(clientId);
  }

  setEnabled(clientId: string, enabled: boolean): boolean {
    const client = this.clients.get(clientId);
    if (!client) return false;
    client.enabled = enabled;
    return true;
  }

  /**
   * POST /oauth2/{site}/registration (RFC 7591 as OpenEMR answers it; AuthorizationController::registerApp,
   * 7.0.3 :235-320). New clients start disabled. Checked in OpenEMR's order: system scopes need a JWKS
   * (invalid_client_metadata), every scope must be known (invalid_scope, :300/:407), then the
   * enumerated fields: before 7.0.4 token_endpoint_auth_method is client_secret_basic or
   * client_secret_post only (:245), then redirect_uris is required (invalid_redirect_uri).
   */
  register(body: unknown, registrationUriBase: string): OAuthAnswer {
    const req = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
    const jwks = req.jwks as { keys?: unknown } | undefined;
    const jwksUri = typeof req.jwks_uri === 'string' ? req.jwks_uri : undefined;
    const hasJwks = !!jwks && Array.isArray(jwks.keys);
    const requestedScope = typeof req.scope === 'string' ? req.scope : '';
    if (req.application_type === 'private' && requestedScope.includes('system/') && !hasJwks && !jwksUri) {
      return { status: 400, body: oauthError('invalid_client_metadata', undefined, 'jwks is invalid') };
    }
    const unknown = splitScopes(requestedScope).find((sc) => !this.opts.knownScopes.has(sc));
    if (unknown) return bad(400, 'invalid_scope', `Check the \`${unknown}\` scope`);
    const methods = this.opts.registrationPrivateKeyJwt
      ? ['client_secret_basic', 'client_secret_post', 'private_key_jwt']
      : ['client_secret_basic', 'client_secret_post'];
    if (req.token_endpoint_auth_method !== undefined && !methods.includes(String(req.token_endpoint_auth_method))) {
      return {
        status: 400,
        body: oauthError(
          'invalid_client_metadata',
          undefined,
          `Unsupported token_endpoint_auth_method value : ${String(req.token_endpoint_auth_method)}`,
        ),
      };
    }
    if (!Array.isArray(req.redirect_uris))
      return { status: 400, body: oauthError('invalid_redirect_uri', undefined, 'redirect_uris is invalid') };
    if (req.token_endpoint_auth_method === 'private_key_jwt' && !hasJwks && !jwksUri) {
      return { status: 400, body: oauthError('invalid_client_metadata', undefined, 'jwks or jwks_uri is required for private_key_jwt') };
    }
    if (hasJwks && jwksUri) {
      return { status: 400, body: oauthError('invalid_client_metadata', undefined, 'jwks and jwks_uri cannot both be set') };
    }
    const scope = typeof req.scope === 'string' ? req.scope : '';
    const client = this.registerClient({
      jwks: hasJwks ? (jwks as { keys: JWK[] }) : undefined,
      jwksUri,
      scopes: scope,
      enabled: false,
      clientName: typeof req.client_name === 'string' ? req.client_name : 'unnamed',
    });
    const answer: Record<string, unknown> = {
      client_id: client.clientId,
      client_secret: randomBytes(64).toString('base64url'),
      registration_access_token: randomBytes(32).toString('base64url'),
      registration_client_uri: `${registrationUriBase}/${randomBytes(16).toString('base64url')}`,
      client_id_issued_at: this.opts.clock.nowSeconds(),
      client_secret_expires_at: 0,
      contacts: Array.isArray(req.contacts) ? req.contacts : [],
      application_type: typeof req.application_type === 'string' ? req.application_type : 'private',
      client_name: client.clientName,
      redirect_uris: Array.isArray(req.redirect_uris) ? req.redirect_uris : [],
      token_endpoint_auth_method:
        typeof req.token_endpoint_auth_method === 'string' ? req.token_endpoint_auth_method : 'client_secret_post',
      scope: client.scopes.join(' '),
    };
    if (jwksUri) answer.jwks_uri = jwksUri;
    return { status: 200, body: answer };
  }

  /** POST /oauth2/{site}/token. */
  async token(form: URLSearchParams): Promise<OAuthAnswer> {
    const grant = form.get('grant_type');
    if (!grant) return bad(400, 'invalid_request', 'Check the `grant_type` parameter');
    if (grant !== 'client_credentials') return bad(400, 'unsupported_grant_type');
    // CustomClientCredentialsGrant: a secret (or anything but a JWT assertion) is never accepted.
    if (form.get('client_assertion_type') !== JWT_BEARER) return bad(400, 'invalid_request', 'assertion type is not supported');
    const assertion = form.get('client_assertion');
    if (!assertion) return bad(400, 'invalid_request', 'Check the `client_assertion` parameter');

    let claims: JWTPayload;
    try {
      claims = decodeJwt(assertion);
    } catch {
      return bad(401, 'invalid_client');
    }
    const clientId = typeof claims.iss === 'string' ? claims.iss : (form.get('client_id') ?? '');
    const client = this.clients.get(clientId);
    if (!client || !client.enabled) return bad(401, 'invalid_client');
    const key = await this.keyFor(client);
    if (!key) return bad(401, 'invalid_client');

    try {
      await compactVerify(assertion, key, { algorithms: ['RS384'] });
    } catch (err) {
      return bad(400, 'invalid_client', `assertion signature or algorithm rejected: ${(err as Error).message}`);
    }
    const failure = this.checkClaims(claims, client.clientId, form.get('client_id'));
    if (failure) return bad(400, 'invalid_client', failure);
    this.usedJtis.set(claims.jti as string, (claims.exp as number) + LEEWAY_SECONDS);

    const requested = form.has('scope') ? splitScopes(form.get('scope') ?? '') : client.scopes;
    // league/oauth2-server AbstractGrant::validateScopes: a scope the server does not know is 400
    // invalid_scope (7.0.3 ScopeRepository.php:148-151); one it knows but the client lacks is dropped.
    const unknown = requested.find((sc) => !this.opts.knownScopes.has(sc));
    if (unknown) return bad(400, 'invalid_scope', `Check the \`${unknown}\` scope`);
    const granted = [...new Set(requested.filter((s) => client.scopes.includes(s)))];
    const lifetime = this.opts.tokenLifetimeSeconds();
    const accessToken = randomBytes(48).toString('base64url');
    this.tokens.set(accessToken, {
      clientId: client.clientId,
      scopes: new Set(granted),
      expiresAtMs: this.opts.clock.nowMs() + lifetime * 1000,
    });
    return { status: 200, body: { token_type: 'Bearer', expires_in: lifetime, access_token: accessToken, scope: granted.join(' ') } };
  }

  /** Resource-server side: a live Bearer token, or why not. */
  authenticate(authorization: string | undefined): Authentication {
    if (!authorization) return { ok: false, hint: 'Missing "Authorization" header' };
    const m = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
    if (!m) return { ok: false, hint: 'Missing "Authorization" header' };
    const token = this.tokens.get(m[1]);
    if (!token) return { ok: false, hint: 'Access token could not be verified' };
    if (token.expiresAtMs <= this.opts.clock.nowMs()) {
      this.tokens.delete(m[1]);
      return { ok: false, hint: 'Access token has expired' };
    }
    return { ok: true, token };
  }

  private checkClaims(claims: JWTPayload, clientId: string, formClientId: string | null): string | null {
    const now = this.opts.clock.nowSeconds();
    if (claims.iss !== clientId || claims.sub !== clientId) return 'iss and sub must both be the client_id';
    if (formClientId && formClientId !== clientId) return 'client_id does not match the assertion';
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.includes(this.opts.tokenUrl)) return `aud must contain ${this.opts.tokenUrl}`;
    if (typeof claims.jti !== 'string' || claims.jti === '') return 'jti is required';
    if (typeof claims.exp !== 'number') return 'exp is required';
    if (claims.exp < now - LEEWAY_SECONDS) return 'assertion has expired';
    if (claims.exp > now + MAX_EXP_AHEAD_SECONDS + LEEWAY_SECONDS) return 'exp is more than 24 hours ahead';
    if (claims.iat !== undefined) {
      if (typeof claims.iat !== 'number') return 'iat must be a number';
      if (claims.iat < now - MAX_IAT_AGE_SECONDS - LEEWAY_SECONDS) return 'iat is more than 5 minutes old';
      if (claims.iat > now + LEEWAY_SECONDS) return 'iat is in the future';
    }
    if (typeof claims.nbf === 'number' && claims.nbf > now + LEEWAY_SECONDS) return 'assertion is not valid yet';
    this.forgetOldJtis(now);
    if (this.usedJtis.has(claims.jti)) return 'jti has already been used';
    return null;
  }

  private forgetOldJtis(now: number): void {
    for (const [jti, until] of this.usedJtis) if (until < now) this.usedJtis.delete(jti);
  }

  /** The first RSA key of the client's JWKS; `kid` is not consulted (OpenEMR behaviour). */
  private async keyFor(client: RegisteredClient): Promise<KeyLike | Uint8Array | null> {
    if (this.keys.has(client.clientId)) return this.keys.get(client.clientId) ?? null;
    const jwk = client.jwks?.keys?.find((k) => k.kty === 'RSA');
    let key: KeyLike | Uint8Array | null = null;
    if (jwk) {
      try {
        key = await importJWK({ ...jwk, alg: 'RS384' }, 'RS384');
      } catch {
        key = null;
      }
    }
    this.keys.set(client.clientId, key);
    return key;
  }
}

export function splitScopes(scopes: string | string[]): string[] {
  const list = Array.isArray(scopes) ? scopes : scopes.split(/\s+/);
  return list.map((s) => s.trim()).filter((s) => s !== '');
}

function bad(status: number, error: string, hint?: string): OAuthAnswer {
  return { status, body: oauthError(error, hint) };
}

/**
 * Does a token's scope set allow `access` ('read' | 'search') on a resource type? SMART v1
 * `system/T.read` covers both; v2 `system/T.rs` style letters are checked one by one; `*` matches any type.
 */
export function scopeAllows(scopes: Set<string>, resourceType: string, access: 'read' | 'search'): boolean {
  const letter = access === 'read' ? 'r' : 's';
  for (const scope of scopes) {
    const m = /^system\/([A-Za-z*]+)\.([a-z]+)$/.exec(scope);
    if (!m || (m[1] !== resourceType && m[1] !== '*')) continue;
    if (m[2] === 'read') return true;
    if (/^c?r?u?d?s?$/.test(m[2]) && m[2].includes(letter)) return true;
  }
  return false;
}
