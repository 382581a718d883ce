/**
 * OpenEMR stand-in: a local HTTP server that answers like OpenEMR's FHIR R4 API and OAuth2 server,
 * including the parts a sync connector must survive (see shared/reference/OPENEMR-API.md).
 *
 *   const openemr = await startOpenEmrStandIn();
 *   // openemr.tokenUrl, openemr.fhirBaseUrl, openemr.client (RS384 keys of an enabled client)
 *   await openemr.close();
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportPKCS8, generateKeyPair, JWK, KeyLike } from 'jose';
import { FaultInjector, FaultProfile } from '../faults';
import { BulkExports } from './bulk-export';
import { handleControl } from './control-api';
import { createControlOperations, OpenEmrStandInStore } from './control-operations';
import { Endpoints, knownScopes } from './discovery';
import { handleFhirApi } from './fhir-api';
import { parseFhirDate } from './fhir-dates';
import { loadNdjsonDirectory, LoadReport } from './ndjson-loader';
import { OAuthServer } from './oauth-server';
import { API_DISABLED, API_SITE_ERROR, FAULT_MESSAGES, kernelError, sendJson, sendText } from './openemr-responses';
import { defaultDataDir, defaultDirectoryFor } from './repo-paths';
export { defaultDirectoryDir } from './repo-paths';
import { RequestStats, RequestStatsSnapshot } from './request-stats';
import { ResourceStore } from './resource-store';
import { matchRoute } from './route-table';
import { ServerClock } from './server-clock';
import { ServerZone } from './server-zone';
import { TYPE_SCOPES } from './standin-types';
import { DEFAULT_OPENEMR_VERSION, OPENEMR_VERSION_TRAITS, OpenEmrVersion } from './versions';

export type { OpenEmrStandInStore } from './control-operations';
export type { FhirResource, SupportedType } from './resource-shape';
export { STANDIN_TYPES, TYPES_IN_ROUTE_ORDER } from './standin-types';
export type { LoadReport } from './ndjson-loader';
export { OPENEMR_VERSIONS, DEFAULT_OPENEMR_VERSION, OPENEMR_VERSION_TRAITS, isOpenEmrVersion } from './versions';
export type { OpenEmrVersion, OpenEmrVersionTraits } from './versions';
export type { ExportFaults, ExportSettings } from './bulk-export';
export { SHAPED_IDS, SHAPED_PATIENT_ID } from './openemr-shapes';

/** The default client's scopes on a release that knows them all (7.0.4+); older releases drop the `.rs` ones. */
export const DEFAULT_CLIENT_SCOPES = [...TYPE_SCOPES, 'system/*.$export', 'system/*.$bulkdata-status', 'system/Binary.read'].join(' ');

export interface OpenEmrStandInOptions {
  /** Port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
  /**
   * Directory of Bulk FHIR NDJSON to load. Default: $OPENEMR_STANDIN_DATA, else
   * <repo>/data/synthea-dev. null starts empty.
   */
  dataDir?: string | null;
  /** OpenEMR site name in every path (default 'default'). */
  site?: string;
  /** Access token lifetime (default 300, as OpenEMR's client_credentials grant). */
  tokenLifetimeSeconds?: number;
  faults?: FaultProfile;
  /** The server's local UTC offset, carried by every timestamp it emits (default '-05:00'). */
  utcOffset?: string;
  /**
   * Instead of utcOffset, an IANA zone with daylight saving (e.g. 'America/New_York'): row times are
   * kept as local wall-clock times and emitted and searched with TODAY's offset, as OpenEMR's
   * date('P') does (server-zone.ts).
   */
  timeZone?: string;
  /** lastUpdated of loaded resources without a date of their own, server local (default 2025-01-01T00:00:00). */
  loadEpoch?: string;
  /** Status polls per export job answering 202 + X-Progress before completion (default 0: done at once, as OpenEMR). */
  exportPendingPolls?: number;
  /** Time budget of the synchronous export in the kick-off (default 120000, OpenEMR's two minutes). */
  exportTimeBudgetMs?: number;
  /** Simulated export cost per resource spent against the budget; the kick-off waits for it (default 0). */
  exportMsPerResource?: number;
  /** Which OpenEMR release to behave as (default the newest, DEFAULT_OPENEMR_VERSION); see versions.ts. */
  version?: OpenEmrVersion;
  /**
   * OpenEMR's `site_addr_oath` global: the base URL the server believes it has, which may differ
   * from where it listens (behind a TLS-offloading proxy it is typically `http://<public host>`).
   * It feeds the `aud` an assertion must carry (ServerConfig::getTokenUrl), the discovery documents,
   * bundle links, the export status URL and Binary URLs. Used as given, a trailing slash included
   * (OpenEMR gives `//oauth2` then). Default: the listening URL.
   */
  siteAddrOath?: string;
  /**
   * false: the REST and FHIR APIs are switched off in Globals, and every /apis request answers 404
   * "API is disabled" (OAuth2AuthorizationListener.php:108). Default true; see also setApiEnabled.
   */
  apiEnabled?: boolean;
  /**
   * Practitioners, Organizations and Locations to serve beside the data, with the links that make
   * the Synthea Encounters point at them. Default: data/openemr-directory (defaultDirectoryDir())
   * when the data is the sample data (data/synthea-dev, whose Encounters its links name); other data
   * brings its own directory files, if any. null: none, Encounters then carry no participant,
   * serviceProvider or location (NULL provider and facility).
   */
  directoryDir?: string | null;
  /** Also serve the OpenEMR-shaped resources of openemr-shapes.ts beside the data (default false). */
  openEmrShapes?: boolean;
  /**
   * Ties of a sorted Patient search ordered differently per LIMIT window (MySQL filesort may do so),
   * so `_offset` paging inside one second skips and repeats Patients. Default false: row order.
   */
  unstableTies?: boolean;
}

export interface StandInClient {
  clientId: string;
  privateKeyPem: string;
  privateKey: KeyLike;
  privateJwk: JWK;
  publicJwks: { keys: JWK[] };
  scopes: string;
}

export interface OpenEmrStandIn {
  /** Where the stand-in listens: http://127.0.0.1:<port>. */
  baseUrl: string;
  /** The base URL it believes it has (siteAddrOath option; default baseUrl). */
  siteAddrOath: string;
  /** `${siteAddrOath}/oauth2/${site}/token`: the exact value an assertion's aud must contain. */
  audience: string;
  /** The release this stand-in behaves as. */
  version: OpenEmrVersion;
  site: string;
  /** `${baseUrl}/apis/${site}/fhir`, where it listens. */
  fhirBaseUrl: string;
  /** `${baseUrl}/oauth2/${site}/token`, where it listens (the aud is `audience`). */
  tokenUrl: string;
  /** An enabled client registered at start with DEFAULT_CLIENT_SCOPES. */
  client: StandInClient;
  /** Switches the REST/FHIR APIs on or off in Globals (off: 404 "API is disabled"). */
  setApiEnabled(enabled: boolean): void;
  /** Registers a client directly (as an admin would); enabled unless enabled: false. Returns its client_id. */
  registerClient(opts: { jwks: { keys: JWK[] }; scopes: string | string[]; enabled?: boolean; clientName?: string }): string;
  store: OpenEmrStandInStore;
  faults: FaultInjector;
  /** What the initial data load did (undefined when started empty). */
  loadReport?: LoadReport;
  stats(): RequestStatsSnapshot;
  resetStats(): void;
  close(): Promise<void>;
}

export async function startOpenEmrStandIn(options: OpenEmrStandInOptions = {}): Promise<OpenEmrStandIn> {
  const site = options.site ?? 'default';
  const version = options.version ?? DEFAULT_OPENEMR_VERSION;
  const traits = OPENEMR_VERSION_TRAITS[version];
  const clock = new ServerClock();
  const zone = new ServerZone(clock, { utcOffset: options.utcOffset, timeZone: options.timeZone });
  // Server local, so read as a wall-clock time (offset 0 gives its naive seconds).
  const loadEpoch = parseFhirDate(options.loadEpoch ?? '2025-01-01T00:00:00', 0);
  if (!loadEpoch) throw new Error(`loadEpoch is not a FHIR dateTime: ${options.loadEpoch}`);
  const faults = new FaultInjector(options.faults ?? {});
  const stats = new RequestStats();
  const store = new ResourceStore({ clock, zone, loadEpochNaive: loadEpoch.lo });
  const bulkExports = new BulkExports(
    store,
    {
      pendingPolls: options.exportPendingPolls ?? 0,
      timeBudgetMs: options.exportTimeBudgetMs ?? 120_000,
      msPerResource: options.exportMsPerResource ?? 0,
      faults: {},
    },
    zone.name,
  );

  const dataDir = options.dataDir === undefined ? defaultDataDir() : options.dataDir;
  const directoryDir = options.directoryDir === undefined ? defaultDirectoryFor(dataDir) : options.directoryDir;
  const loadReport =
    dataDir === null ? undefined : await loadNdjsonDirectory(store, dataDir, directoryDir !== null ? { directoryDir } : {});

  // Routes need the URLs, which exist only once the port is known: fill in after listen().
  let ready: ((req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>) | undefined;
  const server = http.createServer((req, res) => {
    if (!ready) {
      res.writeHead(503).end();
      return;
    }
    ready(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, kernelError((err as Error).message ?? 'error'));
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const baseUrl = `http://127.0.0.1:${port}`;
  const siteAddrOath = options.siteAddrOath ?? baseUrl;
  // Every URL the server writes into an answer starts from site_addr_oath, never from the request.
  const endpoints: Endpoints = {
    baseUrl: siteAddrOath,
    site,
    tokenUrl: `${siteAddrOath}/oauth2/${site}/token`,
    fhirBaseUrl: `${siteAddrOath}/apis/${site}/fhir`,
    scopes: knownScopes(traits.smartV2Scopes),
  };
  let apiEnabled = options.apiEnabled ?? true;
  const oauth = new OAuthServer({
    clock,
    tokenUrl: endpoints.tokenUrl,
    tokenLifetimeSeconds: () => faults.current.tokenLifetimeSeconds ?? options.tokenLifetimeSeconds ?? 300,
    knownScopes: new Set(endpoints.scopes),
    registrationPrivateKeyJwt: traits.registrationPrivateKeyJwt,
  });
  const ops = createControlOperations({
    store,
    clock,
    oauth,
    faults,
    exports: bulkExports,
    stats,
    zone,
    fhirApiUrl: endpoints.fhirBaseUrl,
  });
  if (options.openEmrShapes) ops.addOpenEmrShapes();
  const fhirCtx = { endpoints, zone, clock, store, oauth, exports: bulkExports, traits, unstableTies: options.unstableTies ?? false };

  ready = async (req, res) => {
    // The web server's Date header comes from the same clock as the rows (MySQL NOW() on real OpenEMR).
    res.setHeader('Date', new Date(clock.nowMs()).toUTCString());
    const url = new URL(req.url ?? '/', baseUrl);
    let segments: string[];
    try {
      segments = url.pathname
        .split('/')
        .filter((s) => s !== '')
        .map(decodeURIComponent);
    } catch {
      segments = ['?'];
    }
    if (segments[0] === '_control') return handleControl(req, res, segments.slice(1), ops, zone);

    // Outside /apis and /oauth2 there is no OpenEMR: the web server's own 404 (a wrong web root).
    if (segments[0] !== 'apis' && segments[0] !== 'oauth2') {
      stats.record('unmatched');
      return sendText(res, 404, '<html><body><h1>Not Found</h1></body></html>', 'text/html');
    }
    // The site comes from the path and must exist (SiteSetupListener); then the API must be on.
    if ((segments[0] === 'apis' || segments[0] === 'oauth2') && segments.length > 1 && segments[1] !== site) {
      stats.record('unmatched');
      return sendJson(res, 400, API_SITE_ERROR);
    }
    if (segments[0] === 'apis' && !apiEnabled) {
      stats.record('unmatched');
      return sendJson(res, 404, API_DISABLED);
    }
    const route = matchRoute(req.method ?? 'GET', segments, site);
    stats.record(route.name);
    await faults.delay();
    const fault = faults.next(url.pathname);
    if (fault?.kind === 'reset') {
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'status') {
      const retry = fault.status === 429 || fault.status === 503 ? faults.retryAfterHeaders() : {};
      return sendJson(res, fault.status, kernelError(FAULT_MESSAGES[fault.status] ?? 'error'), retry);
    }
    return handleFhirApi(req, res, url, route, fhirCtx);
  };

  const { publicKey, privateKey } = await generateKeyPair('RS384', { extractable: true });
  const kid = 'stand-in-default';
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), alg: 'RS384', use: 'sig', kid };
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), alg: 'RS384', use: 'sig', kid };
  // The release's own scopes only: a 7.0.3 client cannot hold the v2 `.rs` scopes.
  const clientScopes = DEFAULT_CLIENT_SCOPES.split(' ')
    .filter((sc) => endpoints.scopes.includes(sc))
    .join(' ');
  const defaultClient = oauth.registerClient({
    jwks: { keys: [publicJwk] },
    scopes: clientScopes,
    enabled: true,
    clientName: 'stand-in default client',
  });

  return {
    baseUrl,
    siteAddrOath,
    audience: endpoints.tokenUrl,
    version,
    site,
    fhirBaseUrl: `${baseUrl}/apis/${site}/fhir`,
    tokenUrl: `${baseUrl}/oauth2/${site}/token`,
    client: {
      clientId: defaultClient.clientId,
      privateKeyPem: await exportPKCS8(privateKey),
      privateKey,
      privateJwk,
      publicJwks: { keys: [publicJwk] },
      scopes: clientScopes,
    },
    setApiEnabled: (enabled) => {
      apiEnabled = enabled;
    },
    registerClient: (opts) => oauth.registerClient({ ...opts, enabled: opts.enabled ?? true }).clientId,
    store: ops,
    faults,
    loadReport,
    stats: () => stats.snapshot(),
    resetStats: () => stats.reset(),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
