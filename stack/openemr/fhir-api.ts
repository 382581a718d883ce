/**
 * The public face of the stand-in: OAuth endpoints, discovery, and the FHIR API with OpenEMR's
 * quirks (401 for a missing scope, 404 `[]` for an unknown id, `collection` bundles without next
 * links, application/json content type, bulk export via Binary documents).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BulkExports, EXPORT_ORDER, operationOutcome } from './bulk-export';
import { capabilityStatement, Endpoints, openIdConfiguration, smartConfiguration } from './discovery';
import { formatLocalNaive, parseFhirDate } from './fhir-dates';
import { searchDirectory } from './directory-search';
import { searchClinical, type SearchContext, searchObservations, searchPatients, type SearchQuery } from './fhir-search';
import { parsePhpQuery } from './php-query';
import { ServeContext, servedJson } from './served-json';
import { readBody } from '../http-body';
import { readJson } from './http-body';
import { AccessToken, OAuthServer, scopeAllows } from './oauth-server';
import { INVALID_UUID_VALIDATION, kernelError, oauthError, ROUTE_NOT_FOUND, sendJson, sendText } from './openemr-responses';
import { SupportedType, UUID_SHAPE } from './resource-shape';
import { type ClinicalType, type DirectoryType, specOf } from './standin-types';
import { ResourceStore, StoredRecord } from './resource-store';
import { RouteMatch } from './route-table';
import { ServerClock } from './server-clock';
import type { ServerZone } from './server-zone';
import type { OpenEmrVersionTraits } from './versions';

export interface FhirApiContext {
  endpoints: Endpoints;
  zone: ServerZone;
  clock: ServerClock;
  store: ResourceStore;
  oauth: OAuthServer;
  exports: BulkExports;
  /** The release being modelled (versions.ts). */
  traits: OpenEmrVersionTraits;
  /** Ties of sorted, limited Patient searches depend on the LIMIT window (fhir-search.ts). */
  unstableTies: boolean;
}

const JSON_TYPE = 'application/json';

export async function handleFhirApi(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  route: RouteMatch,
  ctx: FhirApiContext,
): Promise<void> {
  switch (route.name) {
    case 'POST /oauth2/token': {
      const answer = await ctx.oauth.token(new URLSearchParams(await readBody(req)));
      return sendJson(res, answer.status, answer.body, { 'cache-control': 'no-store', pragma: 'no-cache' });
    }
    case 'POST /oauth2/registration': {
      let body: unknown;
      try {
        body = await readJson(req);
      } catch {
        return sendJson(res, 400, { error: 'invalid_client_metadata', error_description: 'body is not JSON' });
      }
      const answer = ctx.oauth.register(body, `${ctx.endpoints.baseUrl}/oauth2/${ctx.endpoints.site}/client`);
      return sendJson(res, answer.status, answer.body);
    }
    case 'GET /oauth2/.well-known/openid-configuration':
      return sendJson(res, 200, openIdConfiguration(ctx.endpoints));
    case 'GET /fhir/.well-known/smart-configuration':
      return sendJson(res, 200, smartConfiguration(ctx.endpoints));
    case 'GET /fhir/metadata':
      // Date-only: FhirMetaDataRestController.php:73 `date("Y-m-d", time())`.
      return sendJson(
        res,
        200,
        capabilityStatement(
          ctx.endpoints,
          formatLocalNaive(ctx.clock.nowSeconds(), ctx.zone.offsetNow()).slice(0, 10),
          ctx.traits.softwareVersion,
        ),
      );
    default:
      break;
  }

  // Everything else under /fhir needs a live token, checked before the route is known to exist
  // (OpenEMR authenticates in the dispatcher, before route matching).
  const auth = ctx.oauth.authenticate(req.headers.authorization);
  if (!auth.ok) return sendJson(res, 401, oauthError('access_denied', auth.hint));
  const token = auth.token;
  // A missing scope is 401 in OpenEMR, not 403.
  const denied = () => sendJson(res, 401, kernelError('Unauthorized'));

  if (route.type !== undefined) {
    const type = route.type;
    if (route.id === undefined) {
      if (!scopeAllows(token.scopes, type, 'search')) return denied();
      // $_GET, not the raw query: PHP has already kept the last of repeated keys (php-query.ts).
      const query = parsePhpQuery(rawQuery(req));
      const searchCtx = { offsetMinutes: ctx.zone.offsetNow(), traits: ctx.traits, unstableTies: ctx.unstableTies };
      const records = searchType(ctx.store, type, query, searchCtx);
      // self = site_addr_oath + REDIRECT_URL: the path without its query (FhirResourcesService::createBundle).
      return sendText(res, 200, bundleJson(records, `${ctx.endpoints.fhirBaseUrl}/${type}`, ctx), JSON_TYPE);
    }
    if (!scopeAllows(token.scopes, type, 'read')) return denied();
    if (!UUID_SHAPE.test(route.id)) return sendJson(res, 400, INVALID_UUID_VALIDATION);
    const rec = ctx.store.getRecord(type, route.id);
    return rec ? sendText(res, 200, servedJson(rec, serveContext(ctx)), JSON_TYPE) : sendText(res, 404, '[]', JSON_TYPE);
  }

  switch (route.name) {
    case 'GET /fhir/$export':
    case 'GET /fhir/Patient/$export':
    case 'GET /fhir/Group/{id}/$export':
      return kickOffExport(req, res, route, token, ctx);
    case 'GET /fhir/$bulkdata-status':
    case 'DELETE /fhir/$bulkdata-status':
      return exportStatus(req, res, url, token, ctx);
    case 'GET /fhir/Binary/{id}':
      return sendBinary(res, route.id as string, token, ctx);
    default:
      return sendJson(res, 404, ROUTE_NOT_FOUND);
  }
}

/** The search each type's entry in standin-types.ts names. */
function searchType(store: ResourceStore, type: SupportedType, query: SearchQuery, ctx: SearchContext): StoredRecord[] {
  const search = specOf(type).search;
  if (search === 'patient') return searchPatients(store, query, ctx);
  if (search === 'observation') return searchObservations(store, query, ctx);
  if (search === 'directory') return searchDirectory(store, type as DirectoryType, query, ctx);
  return searchClinical(store, type as ClinicalType, query, ctx);
}

export function serveContext(ctx: FhirApiContext): ServeContext {
  return { nowSeconds: ctx.clock.nowSeconds(), offsetMinutes: ctx.zone.offsetNow(), relabel: ctx.zone.followsDst, traits: ctx.traits };
}

/** The query string exactly as sent (WHATWG URL parsing would re-encode parts of it). */
function rawQuery(req: IncomingMessage): string {
  const raw = req.url ?? '';
  const q = raw.indexOf('?');
  return q < 0 ? '' : raw.slice(q + 1);
}

/** A `collection` Bundle: total = entries in this response, only a self link, never next. */
function bundleJson(records: StoredRecord[], selfUrl: string, ctx: FhirApiContext): string {
  const head = {
    meta: { lastUpdated: formatLocalNaive(ctx.clock.nowSeconds(), ctx.zone.offsetNow()) },
    resourceType: 'Bundle',
    type: 'collection',
    total: records.length,
    link: [{ relation: 'self', url: selfUrl }],
  };
  const text = JSON.stringify(head);
  if (records.length === 0) return text;
  // Stored resources are already JSON text: splice them in instead of parse + stringify.
  const base = ctx.endpoints.fhirBaseUrl;
  const serve = serveContext(ctx);
  const entries = records.map((r) => `{"fullUrl":${JSON.stringify(`${base}/${r.type}/${r.id}`)},"resource":${servedJson(r, serve)}}`);
  return `${text.slice(0, -1)},"entry":[${entries.join(',')}]}`;
}

/** Accept and Prefer are compared exactly (validateHeaders, FhirOperationExportRestController.php:562-567). */
const EXPORT_ACCEPT = 'application/fhir+json';
const EXPORT_PREFER = 'respond-async';

async function kickOffExport(
  req: IncomingMessage,
  res: ServerResponse,
  route: RouteMatch,
  token: AccessToken,
  ctx: FhirApiContext,
): Promise<void> {
  const specific =
    route.name === 'GET /fhir/Patient/$export'
      ? 'system/Patient.$export'
      : route.name === 'GET /fhir/Group/{id}/$export'
        ? 'system/Group.$export'
        : undefined;
  if (!token.scopes.has('system/*.$export') && !(specific && token.scopes.has(specific)))
    return sendJson(res, 401, kernelError('Unauthorized'));
  const params = parsePhpQuery(rawQuery(req));
  const sinceRaw = params.get('_since');
  // Without _since, `new \DateTime(date(ATOM, 0))` (:176): the Unix epoch, compared as local wall-clock
  // time like any _since, so rows dated before 1970 (clinical notes) are never exported.
  let since = ctx.zone.offsetNow() * 60;
  // 7.0.2 reads `_since ?? now` (any value present, even empty, reaches the TypeError); later releases `!empty(_since)`.
  if (sinceRaw !== undefined && (sinceRaw !== '' || !ctx.traits.exportSince)) {
    // 7.0.2 before .2 hands the raw string to ExportJob::setResourceIncludeTime(\DateTime): a TypeError,
    // uncaught, so a 500 (openemr#7746). Later releases parse it before their try block, so a
    // malformed one is an uncaught exception too.
    const offset = ctx.zone.offsetNow();
    const parsed = ctx.traits.exportSince && typeof sinceRaw === 'string' ? parseFhirDate(sinceRaw, offset) : null;
    if (!parsed)
      return sendJson(
        res,
        500,
        kernelError(ctx.traits.exportSince ? 'Invalid date format for _since parameter' : 'An internal server error occurred'),
      );
    // Compared with local wall-clock rows after conversion with today's offset, as searches are.
    since = parsed.lo + offset * 60;
  }
  if (req.headers.accept !== EXPORT_ACCEPT) return sendJson(res, 400, operationOutcome("'Accept' header invalid"));
  if (req.headers.prefer !== EXPORT_PREFER) return sendJson(res, 400, operationOutcome("'Prefer' header invalid"));
  // `type` is honoured, `_type` never read (openemr#8668); without `type`, every readable type.
  const typeParam = params.get('type');
  const requested = typeof typeParam === 'string' && typeParam !== '' ? typeParam.split(',') : undefined;
  const readable = EXPORT_ORDER.filter((t) => scopeAllows(token.scopes, t, 'read'));
  if (requested) {
    const denied = requested.find((t) => !readable.includes(t as SupportedType));
    if (denied) return sendJson(res, 401, operationOutcome(`AccessToken does not grant access to resource ${denied}`));
  } else if (readable.length === 0) {
    return sendJson(res, 401, operationOutcome('AccessToken does not grant access to any supported system resources'));
  }
  const { job, elapsedMs } = ctx.exports.start({
    request: req.url ?? '',
    clientId: token.clientId,
    since,
    types: requested ? (requested as SupportedType[]) : readable,
    serve: serveContext(ctx),
  });
  // The export runs inside the kick-off: the answer comes when the work (or the budget) is done.
  if (elapsedMs > 0) await new Promise((resolve) => setTimeout(resolve, elapsedMs));
  res.writeHead(202, {
    'content-type': 'application/json',
    'content-location': `${ctx.endpoints.fhirBaseUrl}/$bulkdata-status?job=${job.id}`,
    'content-length': '0',
  });
  res.end();
}

function exportStatus(req: IncomingMessage, res: ServerResponse, url: URL, token: AccessToken, ctx: FhirApiContext): void {
  if (!token.scopes.has('system/*.$bulkdata-status')) return sendJson(res, 401, kernelError('Unauthorized'));
  const jobId = url.searchParams.get('job') ?? '';
  const job = ctx.exports.job(jobId);
  if (!job) return sendJson(res, 404, kernelError('Job not found'));
  if (req.method === 'DELETE') {
    ctx.exports.cancel(jobId);
    res.writeHead(202, { 'content-length': '0' });
    res.end();
    return;
  }
  if (job.pendingPolls > 0) {
    job.pendingPolls--;
    res.writeHead(202, { 'x-progress': 'in progress', 'content-length': '0' });
    res.end();
    return;
  }
  sendJson(res, 200, {
    transactionTime: job.transactionTime,
    request: job.request,
    requiresAccessToken: true,
    ...ctx.exports.manifest(job, ctx.endpoints.fhirBaseUrl),
  });
}

async function sendBinary(res: ServerResponse, id: string, token: AccessToken, ctx: FhirApiContext): Promise<void> {
  if (!token.scopes.has('system/Binary.read')) return sendJson(res, 401, kernelError('Unauthorized'));
  const doc = ctx.exports.binary(id, ctx.clock.nowSeconds());
  // Unknown or expired (then deleted): 404 with an empty body (FhirDocumentRestController::downloadDocument).
  if (!doc) {
    res.writeHead(404, { 'content-length': '0' });
    res.end();
    return;
  }
  if (doc.fail === 'status-500') return sendJson(res, 500, kernelError('Internal Server Error'));
  res.writeHead(200, { 'content-type': 'application/fhir+ndjson' });
  // Written in slices, waiting for drain, so a million-line export never becomes one string.
  const slice = 2000;
  for (let i = 0; i < doc.lines.length; i += slice) {
    const chunk = doc.lines.slice(i, i + slice).join('\n') + '\n';
    if (res.destroyed) return;
    if (doc.fail === 'reset') {
      // Half of the first slice, then the connection drops.
      res.write(chunk.slice(0, Math.max(1, Math.floor(chunk.length / 2))));
      await new Promise((resolve) => setTimeout(resolve, 20));
      res.destroy();
      return;
    }
    if (!res.write(chunk)) {
      await new Promise<void>((resolve) => {
        res.once('drain', () => resolve());
        res.once('close', () => resolve());
      });
    }
  }
  res.end();
}
