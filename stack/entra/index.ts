/**
 * Local stand-in for the Microsoft Entra ID v2.0 token endpoint (client-credentials flow only).
 *
 * Serves HTTPS with the locally trusted certificate (stack/tls.ts) because @azure/identity refuses an
 * http authorityHost. Works with the real
 *   new ClientSecretCredential(tenantId, clientId, secret, { authorityHost, disableInstanceDiscovery: true })
 *
 * Routes:
 *   GET  /{tenant}/v2.0/.well-known/openid-configuration
 *   GET  /{tenant}/discovery/v2.0/keys
 *   POST /{tenant}/oauth2/v2.0/token          (grant_type=client_credentials, scope=<aud>/.default)
 *   GET  /common/discovery/instance           (answered in case a caller forgets disableInstanceDiscovery)
 */
import crypto from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SignJWT, exportJWK, generateKeyPair, jwtVerify, type JWK, type JWTPayload, type KeyLike } from 'jose';
import { FaultInjector, type FaultProfile } from '../faults';
import { localTls } from '../tls';
import { readBody } from '../http-body';

export interface EntraClient {
  clientId: string;
  clientSecret: string;
}

export interface EntraClientInfo extends EntraClient {
  /** Object id of the client's service principal: a stable GUID derived from tenant and client id. */
  oid: string;
}

export interface EntraStandInOptions {
  /** Tenant GUID. Default: a fixed GUID. */
  tenantId?: string;
  /** Registered confidential clients. Default: one client with a generated secret. */
  clients?: EntraClient[];
  /** Lifetime of issued access tokens. Default 3600. MSAL renews within 300 s of expiry: keep > 300. */
  tokenLifetimeSeconds?: number;
  /**
   * Faults for the token and discovery endpoints (FaultProfile or a shared FaultInjector).
   * `tokenLifetimeSeconds` of the profile, when set, overrides the option above (early expiry).
   */
  faults?: FaultProfile | FaultInjector;
  /** Consulted for every token issued; a number overrides the lifetime (used by the AHDS stand-in). */
  tokenLifetimeOverride?: () => number | undefined;
}

export interface AccessTokenClaims extends JWTPayload {
  aud: string;
  iss: string;
  tid: string;
  oid: string;
  appid: string;
  azp: string;
  sub: string;
  exp: number;
  iat: number;
  ver: string;
}

export interface EntraStats {
  /** Every POST to the token endpoint, whatever the outcome. */
  tokenRequests: number;
  tokensIssued: number;
  /** Token requests answered with an error (wrong secret, unknown client, injected fault...). */
  tokenFailures: number;
  discoveryRequests: number;
  /** Tokens issued per client id. */
  byClient: Record<string, number>;
}

export interface EntraStandIn {
  /** https://127.0.0.1:PORT: pass as `authorityHost` to @azure/identity. */
  authorityHost: string;
  tenantId: string;
  /** The first registered client. */
  clientId: string;
  clientSecret: string;
  clients: EntraClientInfo[];
  /** `${authorityHost}/${tenantId}/v2.0` */
  issuer: string;
  tokenEndpoint: string;
  jwksUri: string;
  jwks: { keys: JWK[] };
  faults: FaultInjector;
  /** oid of a registered client (undefined if unknown). */
  oidFor(clientId: string): string | undefined;
  /** Verifies signature, issuer, audience and expiry; resolves the claims or rejects. */
  verifyAccessToken(token: string, audience: string): Promise<AccessTokenClaims>;
  /**
   * Adds a source of token lifetime overrides (consulted before this stand-in's own fault profile);
   * the AHDS stand-in links its FaultProfile.tokenLifetimeSeconds this way. Returns an unlink function.
   */
  useTokenLifetimeFrom(source: () => number | undefined): () => void;
  /** Issues a token directly (no HTTP), e.g. for tests of expiry. */
  issueToken(clientId: string, audience: string, lifetimeSeconds?: number): Promise<string>;
  stats(): EntraStats;
  resetStats(): void;
  close(): Promise<void>;
}

export const DEFAULT_TENANT_ID = '72f988bf-0000-4000-8000-00000000a11d';

/** Stable GUID (v4 layout) from any text. */
export function stableGuid(text: string): string {
  const h = crypto.createHash('sha256').update(text).digest();
  h[6] = (h[6] & 0x0f) | 0x40;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

function aadError(
  res: ServerResponse,
  status: number,
  error: string,
  code: number,
  message: string,
  extraHeaders: Record<string, string> = {},
): void {
  const traceId = crypto.randomUUID();
  const correlationId = crypto.randomUUID();
  const timestamp = new Date()
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
  const body = {
    error,
    error_description: `AADSTS${code}: ${message} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
    error_codes: [code],
    timestamp,
    trace_id: traceId,
    correlation_id: correlationId,
    error_uri: `https://login.microsoftonline.com/error?code=${code}`,
  };
  sendJson(res, status, body, extraHeaders);
}

function sendJson(res: ServerResponse, status: number, body: unknown, extraHeaders: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store, no-cache',
    pragma: 'no-cache',
    'content-length': Buffer.byteLength(text),
    ...extraHeaders,
  });
  res.end(text);
}

export async function startEntraStandIn(opts: EntraStandInOptions = {}): Promise<EntraStandIn> {
  const tenantId = opts.tenantId ?? DEFAULT_TENANT_ID;
  const clientList: EntraClient[] =
    opts.clients && opts.clients.length > 0
      ? opts.clients
      : [{ clientId: stableGuid(`client:${tenantId}`), clientSecret: crypto.randomBytes(24).toString('base64url') }];
  const clients: EntraClientInfo[] = clientList.map((c) => ({ ...c, oid: stableGuid(`oid:${tenantId}:${c.clientId}`) }));
  const byId = new Map(clients.map((c) => [c.clientId, c]));
  const faults = opts.faults instanceof FaultInjector ? opts.faults : new FaultInjector(opts.faults ?? {});

  const { privateKey, publicKey } = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
  const kid = crypto.randomBytes(12).toString('base64url');
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, use: 'sig', alg: 'RS256' };
  const jwks = { keys: [publicJwk] };

  const emptyStats = (): EntraStats => ({
    tokenRequests: 0,
    tokensIssued: 0,
    tokenFailures: 0,
    discoveryRequests: 0,
    byClient: {},
  });
  let stats = emptyStats();

  // Filled in once the port is known.
  let authorityHost = '';
  let issuer = '';

  const lifetimeSources: Array<() => number | undefined> = opts.tokenLifetimeOverride ? [opts.tokenLifetimeOverride] : [];
  const lifetime = (): number => {
    for (const source of lifetimeSources) {
      const v = source();
      if (v !== undefined) return v;
    }
    return faults.current.tokenLifetimeSeconds ?? opts.tokenLifetimeSeconds ?? 3600;
  };

  async function issueToken(clientId: string, audience: string, lifetimeSeconds = lifetime()): Promise<string> {
    const client = byId.get(clientId);
    if (!client) throw new Error(`Unknown client ${clientId}`);
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({
      tid: tenantId,
      oid: client.oid,
      sub: client.oid,
      appid: client.clientId,
      azp: client.clientId,
      appidacr: '1',
      idtyp: 'app',
      ver: '2.0',
      uti: crypto.randomBytes(16).toString('base64url'),
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid })
      .setIssuer(issuer)
      .setAudience(audience)
      .setIssuedAt(now)
      .setNotBefore(now - 300)
      .setExpirationTime(now + lifetimeSeconds)
      .sign(privateKey as KeyLike);
  }

  async function verifyAccessToken(token: string, audience: string): Promise<AccessTokenClaims> {
    const { payload } = await jwtVerify(token, publicKey as KeyLike, {
      issuer,
      audience,
      algorithms: ['RS256'],
    });
    return payload as AccessTokenClaims;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', authorityHost);
    const path = url.pathname;
    await faults.delay();
    const fault = faults.next(path);
    if (fault?.kind === 'reset') {
      req.socket.destroy();
      return;
    }
    const isToken = req.method === 'POST' && /\/oauth2\/v2\.0\/token$/.test(path);
    if (isToken) stats.tokenRequests++;
    if (fault?.kind === 'status') {
      if (isToken) stats.tokenFailures++;
      const retry = fault.status === 429 || fault.status === 503 ? faults.retryAfterHeaders() : {};
      const [error, code, message] =
        fault.status === 429
          ? ['temporarily_unavailable', 50196, 'The server terminated an operation because it encountered a client request loop.']
          : ['temporarily_unavailable', 90033, 'A transient error has occurred. Please try again.'];
      aadError(res, fault.status, error, code, message, retry);
      return;
    }

    if (req.method === 'GET' && path === '/common/discovery/instance') {
      stats.discoveryRequests++;
      const host = new URL(authorityHost).host;
      sendJson(res, 200, {
        tenant_discovery_endpoint: `${authorityHost}/${tenantId}/v2.0/.well-known/openid-configuration`,
        'api-version': '1.1',
        metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
      });
      return;
    }

    const m = /^\/([^/]+)\/(v2\.0\/\.well-known\/openid-configuration|discovery\/v2\.0\/keys|oauth2\/v2\.0\/token)$/.exec(path);
    if (!m) {
      aadError(res, 404, 'invalid_request', 90027, `The route ${path} is not served by the Entra stand-in.`);
      return;
    }
    const [, tenant, what] = m;
    if (tenant !== tenantId && tenant !== 'organizations' && tenant !== 'common') {
      if (isToken) stats.tokenFailures++;
      aadError(res, 400, 'invalid_tenant', 90002, `Tenant '${tenant}' not found.`);
      return;
    }

    if (what.startsWith('v2.0/.well-known') && req.method === 'GET') {
      stats.discoveryRequests++;
      const base = `${authorityHost}/${tenantId}`;
      sendJson(res, 200, {
        issuer,
        token_endpoint: `${base}/oauth2/v2.0/token`,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        jwks_uri: `${base}/discovery/v2.0/keys`,
        token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
        response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
        id_token_signing_alg_values_supported: ['RS256'],
        subject_types_supported: ['pairwise'],
        scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
        tenant_region_scope: 'NA',
        cloud_instance_name: 'microsoftonline.com',
      });
      return;
    }
    if (what === 'discovery/v2.0/keys' && req.method === 'GET') {
      stats.discoveryRequests++;
      sendJson(res, 200, jwks);
      return;
    }
    if (!isToken) {
      aadError(res, 405, 'invalid_request', 900561, 'The endpoint only accepts POST requests.');
      return;
    }

    const form = new URLSearchParams(await readBody(req));
    let clientId = form.get('client_id') ?? '';
    let clientSecret = form.get('client_secret') ?? '';
    const basic = /^Basic\s+(.+)$/i.exec(req.headers.authorization ?? '');
    if (basic) {
      const [id, secret] = Buffer.from(basic[1], 'base64').toString('utf8').split(':');
      clientId ||= decodeURIComponent(id ?? '');
      clientSecret ||= decodeURIComponent(secret ?? '');
    }
    const grantType = form.get('grant_type');
    const scope = form.get('scope') ?? '';
    const fail = (status: number, error: string, code: number, message: string): void => {
      stats.tokenFailures++;
      aadError(res, status, error, code, message);
    };
    if (grantType !== 'client_credentials') {
      fail(400, 'unsupported_grant_type', 70003, `The app requested an unsupported grant type '${grantType ?? ''}'.`);
      return;
    }
    const client = byId.get(clientId);
    if (!client) {
      fail(400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory '${tenantId}'.`);
      return;
    }
    if (!clientSecret) {
      fail(401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
      return;
    }
    const a = Buffer.from(clientSecret);
    const b = Buffer.from(client.clientSecret);
    if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) {
      fail(
        401,
        'invalid_client',
        7000215,
        `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
      );
      return;
    }
    const scopes = scope.split(/\s+/).filter((s) => s && !['openid', 'profile', 'offline_access'].includes(s));
    if (scopes.length !== 1 || !scopes[0].endsWith('/.default')) {
      fail(
        400,
        'invalid_scope',
        1002012,
        `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
      );
      return;
    }
    const audience = scopes[0].slice(0, -'/.default'.length);
    const seconds = lifetime();
    const accessToken = await issueToken(client.clientId, audience, seconds);
    stats.tokensIssued++;
    stats.byClient[client.clientId] = (stats.byClient[client.clientId] ?? 0) + 1;
    sendJson(res, 200, {
      token_type: 'Bearer',
      expires_in: seconds,
      ext_expires_in: seconds,
      access_token: accessToken,
    });
  }

  const { key, cert } = localTls();
  const server = https.createServer({ key, cert }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) aadError(res, 500, 'server_error', 90000, String((err as Error)?.message ?? err));
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  authorityHost = `https://127.0.0.1:${port}`;
  issuer = `${authorityHost}/${tenantId}/v2.0`;

  return {
    authorityHost,
    tenantId,
    clientId: clients[0].clientId,
    clientSecret: clients[0].clientSecret,
    clients,
    issuer,
    tokenEndpoint: `${authorityHost}/${tenantId}/oauth2/v2.0/token`,
    jwksUri: `${authorityHost}/${tenantId}/discovery/v2.0/keys`,
    jwks,
    faults,
    oidFor: (clientId) => byId.get(clientId)?.oid,
    verifyAccessToken,
    useTokenLifetimeFrom(source) {
      lifetimeSources.push(source);
      return () => {
        const i = lifetimeSources.indexOf(source);
        if (i >= 0) lifetimeSources.splice(i, 1);
      };
    },
    issueToken: (clientId, audience, lifetimeSeconds) => issueToken(clientId, audience, lifetimeSeconds),
    stats: () => ({ ...stats, byClient: { ...stats.byClient } }),
    resetStats: () => {
      stats = emptyStats();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
