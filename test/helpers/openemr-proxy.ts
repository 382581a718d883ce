import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '../../src/config/load';
import { SmartBackendTokenProvider } from '../../src/openemr/token-provider';
import { NoopTelemetry } from '../../src/telemetry/telemetry';
import type { OpenEmrStandIn } from '../../stack/openemr';

/**
 * A real HTTP server in front of the OpenEMR stand-in that the connector is pointed at
 * (OPENEMR_BASE_URL), so a test can make the export and search answers what real OpenEMR sends on a
 * bad day: error[] entries, a missing type, a file that expired (404, empty body) or breaks off,
 * deleted[], a file on a foreign host, 429 while polling, an empty or failing answer to a search. Everything
 * else passes through untouched. The stand-in's own absolute URLs (status, Binary) carry its origin,
 * not the proxy's, exactly as OpenEMR's site_addr_oath does behind TLS offload.
 *
 * Token requests are answered with a token the proxy gets from the stand-in itself (the assertion's
 * aud must name the stand-in's token URL), so every FHIR request reaches the stand-in authorised.
 */
export interface ProxyHooks {
  /** Answer the $export kick-off with this status instead of forwarding it. */
  kickoffStatus?: number;
  /** Answers for the first status polls, before the real one: e.g. 429 with Retry-After. */
  polls?: Array<{ status: number; headers?: Record<string, string> }>;
  /** Rewrites the completed status body (the parsed JSON). */
  status?: (body: Record<string, any>, proxyUrl: string) => Record<string, any>;
  /** What happens to a Binary download: served, expired (404 with an empty body) or cut after a few lines. */
  binary?: (id: string) => 'serve' | 'expire' | 'cut';
  /** Files the proxy serves itself, by path (NDJSON text). */
  files?: Record<string, string>;
  /** Searches whose path matches answer an empty collection bundle (as 7.0.2 does for any paged search). */
  emptySearch?: RegExp;
  /** Searches whose path matches answer 400 with an OperationOutcome (a search that fails, not retried). */
  failSearch?: RegExp;
}

export interface RecordedRequest {
  method: string;
  path: string;
  authorized: boolean;
}

export interface OpenEmrProxy {
  url: string;
  hooks: ProxyHooks;
  requests: RecordedRequest[];
  count(method: string, path: RegExp): number;
  /** Clears the hooks, the recorded requests and the poll counter. */
  reset(hooks?: ProxyHooks): void;
  close(): Promise<void>;
}

export async function startOpenEmrProxy(standIn: OpenEmrStandIn, standInConfig: Config): Promise<OpenEmrProxy> {
  const tokens = new SmartBackendTokenProvider(
    { ...standInConfig.openemr, privateKey: standIn.client.privateKeyPem },
    standInConfig.http,
    new NoopTelemetry(),
  );
  const target = new URL(standIn.baseUrl);
  const requests: RecordedRequest[] = [];
  const proxy: OpenEmrProxy = {
    url: '',
    hooks: {},
    requests,
    count: (method, path) => requests.filter((r) => r.method === method && path.test(r.path)).length,
    reset: (hooks = {}) => {
      proxy.hooks = hooks;
      requests.length = 0;
      polls = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  let polls = 0;
  const server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    const hooks = proxy.hooks;
    requests.push({ method: req.method ?? 'GET', path, authorized: typeof req.headers.authorization === 'string' });
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(body === undefined ? '' : JSON.stringify(body));
    };
    if (req.method === 'POST' && /\/oauth2\/[^/]+\/token$/.test(path)) {
      req.resume();
      tokens.invalidate();
      tokens.getToken().then(
        (token) => json(200, { token_type: 'Bearer', expires_in: 300, access_token: token }),
        () => json(500, { error: 'server_error' }),
      );
      return;
    }
    if (req.method === 'GET' && /\/\.well-known\/smart-configuration$/.test(path.split('?')[0]!)) {
      // The proxy is the token endpoint the connector should use (it answers tokens itself).
      return json(200, { token_endpoint: `${proxy.url}/oauth2/default/token`, grant_types_supported: ['client_credentials'] });
    }
    const file = hooks.files?.[path.split('?')[0]!];
    if (file !== undefined) {
      res.writeHead(200, { 'content-type': 'application/fhir+ndjson' });
      res.end(file);
      return;
    }
    if (/\/fhir\/\$export/.test(path) && hooks.kickoffStatus)
      return json(hooks.kickoffStatus, { error: 'An error occurred', message: 'injected', code: 0 });
    if (req.method === 'GET' && /\/fhir\/\$bulkdata-status/.test(path) && hooks.polls && polls < hooks.polls.length) {
      const answer = hooks.polls[polls++]!;
      return json(
        answer.status,
        answer.status === 202 ? undefined : { error: 'An error occurred', message: 'busy', code: 0 },
        answer.headers,
      );
    }
    const binary = /\/fhir\/Binary\/([^/?]+)/.exec(path)?.[1];
    const fate = binary ? (hooks.binary?.(binary) ?? 'serve') : 'serve';
    if (fate === 'expire') {
      res.writeHead(404);
      res.end();
      return;
    }
    if (req.method === 'GET' && hooks.failSearch?.test(path))
      return json(400, {
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'processing', details: { text: 'injected search failure' } }],
      });
    if (req.method === 'GET' && hooks.emptySearch?.test(path))
      return json(200, { resourceType: 'Bundle', type: 'collection', total: 0, link: [{ relation: 'self', url: path }] });

    const upstream = http.request(
      { host: target.hostname, port: target.port, method: req.method, path, headers: { ...req.headers, host: target.host } },
      (up) => {
        const isStatus = req.method === 'GET' && /\/fhir\/\$bulkdata-status/.test(path) && up.statusCode === 200 && hooks.status;
        if (!isStatus && fate !== 'cut') {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        up.on('data', (c: Buffer) => chunks.push(c));
        up.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (fate === 'cut') {
            // A few whole lines, then the connection drops in the middle of the next one.
            const lines = text.split('\n');
            res.writeHead(200, { 'content-type': 'application/fhir+ndjson' });
            res.write(lines.slice(0, 3).join('\n') + '\n' + (lines[3] ?? '').slice(0, 20));
            setTimeout(() => res.destroy(), 20);
            return;
          }
          const body = hooks.status!(JSON.parse(text), proxy.url);
          json(200, body);
        });
      },
    );
    upstream.on('error', () => json(502, { error: 'bad gateway' }));
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}

/** A server on another origin that records whether a request carried a bearer token. */
export async function startForeignHost(): Promise<{ url: string; hits: RecordedRequest[]; body: string; close(): Promise<void> }> {
  const state = { url: '', hits: [] as RecordedRequest[], body: '', close: async () => undefined as void };
  const server = http.createServer((req, res) => {
    state.hits.push({ method: req.method ?? 'GET', path: req.url ?? '/', authorized: typeof req.headers.authorization === 'string' });
    res.writeHead(200, { 'content-type': 'application/fhir+ndjson' });
    res.end(state.body);
  });
  await new Promise<void>((resolve) => server.listen(0, 'localhost', resolve));
  state.url = `http://localhost:${(server.address() as AddressInfo).port}`;
  state.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return state;
}
