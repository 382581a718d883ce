/**
 * Local stand-in for an Azure Health Data Services FHIR service (R4), behaving as microsoft/fhir-server
 * (the code AHDS runs) does. Plain HTTP on 127.0.0.1; tokens come from the Entra stand-in.
 *
 * Engine: every write is checked as AHDS checks it (engine.ts: parse errors, top-level cardinality and
 * formats, the narrative sanitizer; far less than Medplum's validator) and stored in Medplum's MemoryRepository
 * (@medplum/fhir-router). AHDS semantics Medplum does not have (integer versions, no new version for
 * an unchanged PUT, soft delete, bundle limits, throttling) are implemented here; see store.ts.
 *
 * Bundles follow microsoft/fhir-server (the code AHDS runs; see the audit of December 2026):
 * - batches are sequential unless `x-bundle-processing-logic: parallel`; an invalid value is processed
 *   sequentially with one extra trailing 405 warning entry (BundleHandler.AddFinalOperationOutcomesIfApplicable);
 * - sequential: a throttled entry is retried once by the server after its Retry-After; still throttled,
 *   it and every later entry answer 429, and the outer answer carries the wait (BundleHandler.cs);
 * - parallel: entries run concurrently, each throttled entry gets its own single server retry, and
 *   all PUTs go to one SQL merge: above `mergeCapacity` concurrent merges every PUT answers 429
 *   (BundleHandlerParallelOperations.cs, BundleOrchestratorOperation.cs); a second entry for one
 *   resource answers a per-entry 400 `duplicate` (transactions refuse duplicates as a whole);
 * - a parse error anywhere (unknown element, wrong JSON type) refuses the whole bundle with 400
 *   (FhirJsonInputFormatter + ValidateModelStateAttribute); no data role refuses it with 403;
 * - a request over 100 s answers 408; an instance over its request capacity answers 429 with an
 *   adaptive x-ms-retry-after-ms (ThrottlingMiddleware.cs, see throttle.ts).
 */
import crypto from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Bundle, BundleEntry, CapabilityStatement, OperationOutcome, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { getResourceTypes } from '@medplum/core';
import { FaultInjector, type FaultProfile } from '../faults';
import { startEntraStandIn, type AccessTokenClaims, type EntraStandIn } from '../entra';
import { contentHash, withoutServerMeta } from '../../src/fhir/canonical';
import { isValidFhirId } from '../../src/fhir/ids';
import { ensureDefinitions, isKnownResourceType, parseErrors, validate } from './engine';
import { SearchError, searchType } from './search';
import { VersionedStore } from './store';
import { readBody } from '../http-body';
import { ConcurrencyCap, THROTTLED_BODY } from './throttle';

export interface AhdsStandInOptions {
  /**
   * Fault profile of the FHIR endpoints. Its tokenLifetimeSeconds shortens the tokens issued by the
   * Entra stand-in in use (given or started here) from then on.
   */
  faults?: FaultProfile;
  /** Entra stand-in whose tokens are accepted. Default: one is started (and closed) with this server. */
  entra?: EntraStandIn;
  /** Faults for the token endpoint of the Entra stand-in started here (not used with `entra`). */
  entraFaults?: FaultProfile;
  /** Token lifetime of the Entra stand-in started here (default 3600 s). */
  tokenLifetimeSeconds?: number;
  /** Default true. When false, requests without a token are served with full rights. */
  requireAuth?: boolean;
  /** Default 500. */
  maxBundleEntries?: number;
  /** Default 100000 (AHDS: 100 s). A request that would take longer answers HTTP 408 when it runs out. */
  bundleTimeLimitMs?: number;
  /**
   * Requests in flight the instance admits (fhir-server ThrottlingMiddleware); more answer 429 with
   * an adaptive x-ms-retry-after-ms. Default: no cap. Changeable with `setCapacity`.
   */
  capacity?: number;
  /** Parallel bundles merged at once before every PUT of another answers 429 (fhir-server: 256). */
  mergeCapacity?: number;
  /** How long a write waits for another request writing the same resource before 412 (fhir-server: 30 x 1 s). */
  conflictWaitMs?: number;
  /** Versioning policy, for all types or per type (CapabilityStatement `versioning`); default versioned. */
  versioning?: Versioning | Record<string, Versioning>;
  /** Client ids or oids with no FHIR data role at all: a bundle from them answers 403 as a whole. */
  withoutDataRole?: string[];
  /** The CapabilityStatement's fhirVersion (default 4.0.1). */
  fhirVersion?: string;
  /**
   * Client ids or oids whose service principal lacks the FHIR Data Writer role (reader only):
   * their writes answer 403 `forbidden`.
   */
  withoutWriterRole?: string[];
}

export type Versioning = 'no-version' | 'versioned' | 'versioned-update';

export interface AhdsStats {
  /** HTTP requests received (all endpoints). */
  requests: number;
  /** Bundle entries received. */
  entries: number;
  /** HTTP answers by status ("reset" for destroyed connections). */
  byStatus: Record<string, number>;
  /** Bundle entry answers by response.status. */
  byEntryStatus: Record<string, number>;
  /** Accepted writes (PUT, POST, DELETE; single or in bundles), no-op PUTs included. */
  writes: number;
  /** Writes that created a new version (creates, changed updates, deletes). */
  versionsCreated: number;
  /** PUTs equal to the stored resource: answered 200 without a new version. */
  noopWrites: number;
  /** Writes that arrived while another request was still writing the same resource. */
  overlappingWrites: number;
  /** Requests answered 429 by the capacity cap. */
  capacityThrottled: number;
  /** Request body bytes received and answer body bytes sent (the benchmark's bytes per second both ways). */
  bytesIn: number;
  bytesOut: number;
}

export interface AhdsStandIn {
  /** http://127.0.0.1:PORT (the FHIR base URL). */
  fhirUrl: string;
  /** Token audience (= fhirUrl); scope is `${audience}/.default`. */
  audience: string;
  /** The Entra stand-in in use (authorityHost, tenantId, clientId, clientSecret, ...). */
  entra: EntraStandIn;
  faults: FaultInjector;
  stats(): AhdsStats;
  resetStats(): void;
  /** Current version of every stored (not deleted) resource, sorted by type then id. */
  snapshot(type?: string): Promise<Resource[]>;
  read(type: string, id: string): Promise<Resource | undefined>;
  /** Number of versions of the resource (its current versionId; 0 if never written). */
  versionCount(type: string, id: string): number;
  /** Grant (true) or take away (false) the FHIR Data Writer role of a client id or oid. */
  setWriterRole(clientIdOrOid: string, hasRole: boolean): void;
  /** The underlying store (Medplum MemoryRepository plus AHDS version heads). */
  store: VersionedStore;
  /** The request capacity cap (its `peak` is the most requests in flight at once). */
  cap: ConcurrencyCap;
  setCapacity(capacity: number): void;
  close(): Promise<void>;
}

const FHIR_JSON = 'application/fhir+json; charset=utf-8';

interface Principal {
  oid?: string;
  appid?: string;
  canWrite: boolean;
  /** False without any FHIR data role: a bundle is refused as a whole. */
  hasDataRole?: boolean;
}

interface OpResult {
  status: number;
  body?: Resource;
  headers?: Record<string, string>;
}

type Prepared =
  { kind: 'done'; result: OpResult } | { kind: 'write'; precondition?: () => OpResult | undefined; commit: () => Promise<OpResult> };

interface RequestContext {
  correlationId: string;
  principal: Principal;
  /** This request's place in the queue of writers of each resource (see `writing`). */
  seq?: number;
  /** A parallel bundle that arrived while `mergeCapacity` others were merging. */
  mergeThrottled?: boolean;
}

/** The resource types of the CapabilityStatement, from Medplum's indexed definitions. */
function resourceTypeNames(): string[] {
  ensureDefinitions();
  return [...getResourceTypes()].sort();
}

function outcome(correlationId: string, code: string, diagnostics: string, more: OperationOutcomeIssue[] = []): OperationOutcome {
  return {
    resourceType: 'OperationOutcome',
    id: correlationId,
    meta: { lastUpdated: new Date().toISOString() },
    issue: [{ severity: 'error', code: code as OperationOutcomeIssue['code'], diagnostics }, ...more],
  };
}

function fail(ctx: RequestContext, status: number, code: string, diagnostics: string, headers?: Record<string, string>): OpResult {
  return { status, body: outcome(ctx.correlationId, code, diagnostics), headers };
}

function parseIfMatch(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const m = /^(?:W\/)?"?([^"]*)"?$/.exec(value.trim());
  return m ? m[1] : value;
}

export async function startAhdsStandIn(opts: AhdsStandInOptions = {}): Promise<AhdsStandIn> {
  ensureDefinitions();
  const faults = new FaultInjector(opts.faults ?? {});
  const ownEntra = !opts.entra;
  const entra = opts.entra ?? (await startEntraStandIn({ faults: opts.entraFaults, tokenLifetimeSeconds: opts.tokenLifetimeSeconds }));
  // FaultProfile.tokenLifetimeSeconds of this server shortens the tokens the Entra stand-in issues.
  const unlinkLifetime = entra.useTokenLifetimeFrom(() => faults.current.tokenLifetimeSeconds);
  const requireAuth = opts.requireAuth ?? true;
  const maxEntries = opts.maxBundleEntries ?? 500;
  const bundleTimeLimitMs = opts.bundleTimeLimitMs ?? 100_000;
  const readers = new Set(opts.withoutWriterRole ?? []);
  const noRole = new Set(opts.withoutDataRole ?? []);
  const store = new VersionedStore();
  const cap = new ConcurrencyCap(opts.capacity);
  const mergeCapacity = opts.mergeCapacity ?? 256;
  // The server's own wait before retrying a throttled entry once: the entry's Retry-After
  // (BundleHandlerRuntime: 1-15 s, default 2 s); here the fault profile's retryAfterMs, unclamped so tests stay fast.
  const entryRetryWaitMs = () => faults.current.retryAfterMs ?? 1000;
  const conflictWaitMs = opts.conflictWaitMs ?? 30_000;
  const versioningOf = (type: string): Versioning =>
    typeof opts.versioning === 'string' ? opts.versioning : (opts.versioning?.[type] ?? 'versioned');
  /** Parallel bundles being merged now, by request sequence number. */
  const activeMerges = new Set<number>();
  /** Requests writing each resource, in arrival order: only the first proceeds (see awaitTurn). */
  const writing = new Map<string, number[]>();
  let requestSeq = 0;

  const emptyStats = (): AhdsStats => ({
    requests: 0,
    entries: 0,
    byStatus: {},
    byEntryStatus: {},
    writes: 0,
    versionsCreated: 0,
    noopWrites: 0,
    overlappingWrites: 0,
    capacityThrottled: 0,
    bytesIn: 0,
    bytesOut: 0,
  });
  let stats = emptyStats();

  let fhirUrl = '';
  const tokenCache = new Map<string, { claims: AccessTokenClaims; expMs: number }>();

  async function authenticate(req: IncomingMessage): Promise<Principal | undefined> {
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (!m) return requireAuth ? undefined : { canWrite: true, hasDataRole: true };
    const token = m[1];
    let cached = tokenCache.get(token);
    if (cached && cached.expMs <= Date.now()) {
      tokenCache.delete(token);
      cached = undefined;
    }
    if (!cached) {
      try {
        const claims = await entra.verifyAccessToken(token, fhirUrl);
        if (tokenCache.size > 10_000) tokenCache.clear();
        cached = { claims, expMs: claims.exp * 1000 };
        tokenCache.set(token, cached);
      } catch {
        return requireAuth ? undefined : { canWrite: true, hasDataRole: true };
      }
    }
    const { oid, appid } = cached.claims;
    const hasDataRole = !(noRole.has(oid) || noRole.has(appid));
    return { oid, appid, hasDataRole, canWrite: hasDataRole && !(readers.has(oid) || readers.has(appid)) };
  }

  // ---------------------------------------------------------------- operations

  const versionHeaders = (type: string, id: string, version: number, ms: number): Record<string, string> => ({
    etag: `W/"${version}"`,
    'last-modified': new Date(ms).toUTCString(),
    location: `${fhirUrl}/${type}/${id}/_history/${version}`,
  });

  function forbidden(ctx: RequestContext): OpResult {
    return fail(ctx, 403, 'forbidden', 'Authorization failed.');
  }

  function notSupportedType(ctx: RequestContext, type: string): OpResult {
    return fail(ctx, 404, 'not-supported', `Resource type '${type}' is not supported.`);
  }

  /** Checks and prepares a write of `body` as Type/id (create = POST with a server id). */
  function prepareUpsert(
    ctx: RequestContext,
    type: string,
    id: string,
    body: unknown,
    ifMatch: string | undefined,
    isCreate: boolean,
  ): Prepared {
    const done = (result: OpResult): Prepared => ({ kind: 'done', result });
    if (!ctx.principal.canWrite) return done(forbidden(ctx));
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      return done(fail(ctx, 400, 'invalid', 'The request body is not a valid FHIR resource.'));
    }
    const resource = body as Resource;
    if (resource.resourceType !== type) {
      return done(fail(ctx, 400, 'invalid', `Resource type in the URL must match resourceType in the resource.`));
    }
    if (!isCreate) {
      if (resource.id === undefined || resource.id === null || resource.id === '') {
        return done(fail(ctx, 400, 'invalid', 'Id must be specified in the resource.'));
      }
      if (resource.id !== id) return done(fail(ctx, 400, 'invalid', 'Id in the URL must match id in the resource.'));
      if (!isValidFhirId(id)) return done(fail(ctx, 400, 'invalid', `The id '${id}' is not valid.`));
    }
    const candidate = withoutServerMeta({ ...resource, id } as Resource);
    const hash = contentHash(candidate);
    // Content identical to the stored version already passed the validator: skip the second run.
    const head = isCreate ? undefined : store.head(type, id);
    const unchanged = head !== undefined && !head.deleted && head.hash === hash;
    const issues = unchanged ? null : validate(candidate);
    if (issues) {
      const [first, ...rest] = issues;
      return done({
        status: 400,
        body: outcome(ctx.correlationId, 'invalid', first.diagnostics ?? 'Invalid resource', rest),
      });
    }
    // SqlServerFhirDataStore: If-Match on a missing resource 404, a stale one 412; under the
    // version-update policy an update without If-Match 400.
    const precondition = (): OpResult | undefined => {
      const head = store.head(type, id);
      if (ifMatch === undefined) {
        if (!isCreate && head && !head.deleted && versioningOf(type) === 'versioned-update') {
          return fail(ctx, 400, 'invalid', `A valid if-match header is required for resource type '${type}'.`);
        }
        return undefined;
      }
      if (!head || head.deleted)
        return fail(ctx, 404, 'not-found', `Resource type '${type}' with id '${id}' and version '${ifMatch}' couldn't be found.`);
      if (String(head.version) !== ifMatch) return fail(ctx, 412, 'conflict', `The supplied version '${ifMatch}' did not match.`);
      return undefined;
    };
    const early = precondition();
    if (early) return done(early);
    return {
      kind: 'write',
      precondition,
      commit: () => {
        const w = store.upsert(type, id, candidate, hash);
        stats.writes++;
        if (w.noop) stats.noopWrites++;
        else stats.versionsCreated++;
        const { location, ...headers } = versionHeaders(type, id, w.head.version, w.head.ms);
        // The full stored resource whatever Prefer says: fhir-server reads `return=` only for
        // conditional create (FhirController.cs); Location only on 201.
        return w.resource.then((stored) => ({
          status: w.created ? 201 : 200,
          body: stored,
          headers: w.created ? { ...headers, location } : headers,
        }));
      },
    };
  }

  function prepareDelete(ctx: RequestContext, type: string, id: string): Prepared {
    if (!ctx.principal.canWrite) return { kind: 'done', result: forbidden(ctx) };
    return {
      kind: 'write',
      commit: () => {
        const head = store.softDelete(type, id);
        stats.writes++;
        if (head) stats.versionsCreated++;
        return Promise.resolve({
          status: 204,
          headers: head ? { etag: `W/"${head.version}"`, 'last-modified': new Date(head.ms).toUTCString() } : undefined,
        } as OpResult);
      },
    };
  }

  async function readOp(ctx: RequestContext, type: string, id: string): Promise<OpResult> {
    const head = store.head(type, id);
    if (!head) return fail(ctx, 404, 'not-found', `Resource type '${type}' with id '${id}' couldn't be found.`);
    if (head.deleted) return fail(ctx, 410, 'deleted', `Resource type '${type}' with id '${id}' has been deleted.`);
    const resource = await store.read(type, id);
    if (!resource) return fail(ctx, 404, 'not-found', `Resource type '${type}' with id '${id}' couldn't be found.`);
    const { location: _l, ...headers } = versionHeaders(type, id, head.version, head.ms);
    return { status: 200, body: resource, headers };
  }

  async function vreadOp(ctx: RequestContext, type: string, id: string, version: string): Promise<OpResult> {
    const v = await store.readVersion(type, id, Number(version));
    if (v === undefined)
      return fail(ctx, 404, 'not-found', `Resource type '${type}' with id '${id}' and version '${version}' couldn't be found.`);
    if (v === 'deleted')
      return fail(ctx, 410, 'deleted', `Resource type '${type}' with id '${id}' and version '${version}' has been deleted.`);
    return {
      status: 200,
      body: v,
      headers: { etag: `W/"${version}"`, 'last-modified': new Date(v.meta?.lastUpdated ?? Date.now()).toUTCString() },
    };
  }

  async function historyOp(ctx: RequestContext, type: string, id: string): Promise<OpResult> {
    const head = store.head(type, id);
    if (!head) return fail(ctx, 404, 'not-found', `Resource type '${type}' with id '${id}' couldn't be found.`);
    const entry: BundleEntry[] = [];
    for (let v = head.version; v >= 1; v--) {
      const r = await store.readVersion(type, id, v);
      if (r === 'deleted') {
        entry.push({ request: { method: 'DELETE', url: `${type}/${id}` }, response: { status: '204', etag: `W/"${v}"` } });
      } else if (r) {
        entry.push({
          fullUrl: `${fhirUrl}/${type}/${id}`,
          resource: r,
          request: { method: 'PUT', url: `${type}/${id}` },
          response: { status: v === 1 ? '201' : '200', etag: `W/"${v}"`, lastModified: r.meta?.lastUpdated },
        });
      }
    }
    const bundle: Bundle = {
      resourceType: 'Bundle',
      id: crypto.randomUUID(),
      type: 'history',
      link: [{ relation: 'self', url: `${fhirUrl}/${type}/${id}/_history` }],
      entry,
    };
    return { status: 200, body: bundle };
  }

  async function searchOp(ctx: RequestContext, type: string, query: URLSearchParams): Promise<OpResult> {
    try {
      return { status: 200, body: await searchType(store, fhirUrl, type, query) };
    } catch (err) {
      if (err instanceof SearchError) return fail(ctx, 400, 'invalid', err.message);
      throw err;
    }
  }

  /**
   * Prepares one interaction given by method and a URL relative to the base (no leading slash).
   * Reads run here; writes are returned for the caller to commit.
   */
  async function prepare(
    ctx: RequestContext,
    method: string,
    relUrl: string,
    body: unknown,
    ifMatch: string | undefined,
  ): Promise<Prepared> {
    const done = (result: OpResult): Prepared => ({ kind: 'done', result });
    const [pathPart, queryPart = ''] = relUrl.split('?', 2);
    const segs = pathPart.split('/').filter(Boolean).map(decodeURIComponent);
    const [type, id, op, vid] = segs;
    if (!type) return done(fail(ctx, 404, 'not-found', 'The requested route was not found.'));
    if (!isKnownResourceType(type)) return done(notSupportedType(ctx, type));
    const query = new URLSearchParams(queryPart);
    if (segs.length === 1) {
      if (method === 'GET') return done(await searchOp(ctx, type, query));
      if (method === 'POST') return prepareUpsert(ctx, type, crypto.randomUUID(), body, undefined, true);
      if (method === 'PUT') return done(fail(ctx, 400, 'not-supported', 'Conditional update is not supported by the stand-in.'));
    } else if (segs.length === 2 && id === '_search' && method === 'POST') {
      return done(await searchOp(ctx, type, query));
    } else if (segs.length === 2) {
      if (method === 'GET') return done(await readOp(ctx, type, id));
      if (method === 'PUT') return prepareUpsert(ctx, type, id, body, ifMatch, false);
      if (method === 'DELETE') return prepareDelete(ctx, type, id);
    } else if (segs.length === 3 && op === '_history' && method === 'GET') {
      return done(await historyOp(ctx, type, id));
    } else if (segs.length === 4 && op === '_history' && method === 'GET') {
      return done(await vreadOp(ctx, type, id, vid));
    } else {
      return done(fail(ctx, 404, 'not-found', 'The requested route was not found.'));
    }
    return done(fail(ctx, 405, 'not-supported', `The requested method '${method}' is not supported for this route.`));
  }

  async function execute(ctx: RequestContext, method: string, relUrl: string, body: unknown, ifMatch?: string): Promise<OpResult> {
    const p = await prepare(ctx, method, relUrl, body, ifMatch);
    if (p.kind === 'done') return p.result;
    const failed = p.precondition?.();
    return failed ?? p.commit();
  }

  // ---------------------------------------------------------------- bundles

  function entryTarget(entry: BundleEntry): { method: string; relUrl: string; key?: string } | undefined {
    const method = entry.request?.method;
    let url = entry.request?.url;
    if (!method || !url) return undefined;
    if (url.startsWith(fhirUrl)) url = url.slice(fhirUrl.length);
    url = url.replace(/^\/+/, '');
    const path = url.split('?', 1)[0];
    const segs = path.split('/').filter(Boolean);
    const key = segs.length >= 2 && method !== 'POST' && !url.includes('?') ? `${segs[0]}/${segs[1]}` : undefined;
    return { method, relUrl: url, key };
  }

  function toResponseEntry(r: OpResult): BundleEntry {
    const response: NonNullable<BundleEntry['response']> = { status: String(r.status) };
    if (r.headers?.location) response.location = r.headers.location;
    if (r.headers?.etag) response.etag = r.headers.etag;
    // Parsed back from the RFC 1123 Last-Modified header (BundleHandler, FhirResultExtensions):
    // whole seconds, written +00:00. entry.resource.meta.lastUpdated keeps the milliseconds.
    if (r.headers?.['last-modified'])
      response.lastModified = new Date(r.headers['last-modified']).toISOString().replace(/\.\d{3}Z$/, '+00:00');
    const entry: BundleEntry = { response };
    if (r.status >= 400) response.outcome = r.body as OperationOutcome | undefined;
    else if (r.body) entry.resource = r.body;
    return entry;
  }

  function countEntryStatus(status: string): void {
    stats.byEntryStatus[status] = (stats.byEntryStatus[status] ?? 0) + 1;
  }

  function duplicateOf(targets: Array<ReturnType<typeof entryTarget>>): string | undefined {
    const seen = new Set<string>();
    for (const t of targets) {
      if (!t?.key) continue;
      if (seen.has(t.key)) return t.key;
      seen.add(t.key);
    }
    return undefined;
  }

  const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
  const isMethod = (m: string) => m === 'GET' || m === 'PUT' || m === 'DELETE' || m === 'POST';

  /**
   * Waits until this request is the first still writing `key` (another request holding it is a
   * concurrent update: fhir-server retries the conflicting merge 30 x 1 s, then answers 412,
   * SqlServerFhirDataStore.cs). Undefined when it may write, else the 412.
   */
  async function awaitTurn(ctx: RequestContext, key: string | undefined): Promise<OpResult | undefined> {
    if (!key || ctx.seq === undefined) return undefined;
    const deadline = Date.now() + conflictWaitMs;
    for (;;) {
      const queue = writing.get(key);
      if (!queue || queue[0] === ctx.seq) return undefined;
      if (Date.now() >= deadline) {
        return fail(
          ctx,
          412,
          'conflict',
          'One or more resources were attempted to be updated concurrently with the same version. Please retry the request.',
        );
      }
      await sleep(Math.max(1, Math.min(conflictWaitMs / 30, deadline - Date.now())));
    }
  }

  /** Registers the request as a writer of each key until `release` (arrival order decides). */
  function claim(ctx: RequestContext, keys: Array<string | undefined>): () => void {
    ctx.seq = ++requestSeq;
    const mine = [...new Set(keys.filter((k): k is string => k !== undefined))];
    for (const key of mine) {
      const queue = writing.get(key);
      if (queue) {
        stats.overlappingWrites++;
        queue.push(ctx.seq);
      } else writing.set(key, [ctx.seq]);
    }
    return () => {
      for (const key of mine) {
        const queue = writing.get(key)!.filter((n) => n !== ctx.seq);
        if (queue.length) writing.set(key, queue);
        else writing.delete(key);
      }
    };
  }

  async function runEntry(ctx: RequestContext, entry: BundleEntry, t: ReturnType<typeof entryTarget>): Promise<OpResult> {
    if (!t) return fail(ctx, 400, 'invalid', 'Bundle entry is missing request.method or request.url.');
    if (!isMethod(t.method)) return fail(ctx, 400, 'not-supported', `Method '${t.method}' is not supported in a bundle.`);
    if (t.method !== 'GET') {
      const conflict = await awaitTurn(ctx, t.key);
      if (conflict) return conflict;
    }
    return execute(ctx, t.method, t.relUrl, entry.resource, parseIfMatch(entry.request?.ifMatch));
  }

  const entryThrottled = (ctx: RequestContext): OpResult =>
    fail(ctx, 429, 'throttled', 'The request rate has exceeded the maximum allowed. Please retry the request.', faults.retryAfterHeaders());

  async function processBundle(ctx: RequestContext, bundle: Bundle, logic: 'parallel' | 'sequential'): Promise<OpResult> {
    const entries = bundle.entry ?? [];
    const isTransaction = bundle.type === 'transaction';
    const targets = entries.map(entryTarget);

    if (isTransaction) {
      const dup = duplicateOf(targets);
      if (dup) {
        return fail(ctx, 400, 'invalid', `Bundle contains multiple entries that refers to the same resource '${dup}'.`);
      }
      for (let i = 0; i < entries.length; i++) {
        if (faults.throttleEntry() && faults.throttleEntry()) {
          return fail(
            ctx,
            429,
            'throttled',
            'The maximum number of concurrent API calls on this instance was reached.',
            faults.retryAfterHeaders(),
          );
        }
      }
      const prepared: Prepared[] = [];
      const failTx = (i: number, r: OpResult): OpResult => {
        const t = targets[i];
        const inner = (r.body as OperationOutcome | undefined)?.issue ?? [];
        const where = t ? `'${t.method}' for the requested url '/${t.relUrl}'` : `entry ${i}`;
        return {
          status: r.status,
          headers: r.headers,
          body: outcome(ctx.correlationId, inner[0]?.code ?? 'processing', `Transaction failed on ${where}.`, inner),
        };
      };
      for (let i = 0; i < entries.length; i++) {
        const t = targets[i];
        if (!t) return failTx(i, fail(ctx, 400, 'invalid', 'Bundle entry is missing request.method or request.url.'));
        if (!isMethod(t.method)) return failTx(i, fail(ctx, 400, 'not-supported', `Method '${t.method}' is not supported in a bundle.`));
        const p = await prepare(ctx, t.method, t.relUrl, entries[i].resource, parseIfMatch(entries[i].request?.ifMatch));
        if (p.kind === 'done' && p.result.status >= 400) return failTx(i, p.result);
        prepared.push(p);
      }
      // Re-check preconditions, then apply every write without yielding (atomic).
      for (let i = 0; i < prepared.length; i++) {
        const p = prepared[i];
        const failed = p.kind === 'write' ? p.precondition?.() : undefined;
        if (failed) return failTx(i, failed);
      }
      const results = prepared.map((p) => (p.kind === 'done' ? Promise.resolve(p.result) : p.commit()));
      const responseEntries = (await Promise.all(results)).map(toResponseEntry);
      responseEntries.forEach((e) => countEntryStatus(e.response!.status));
      return {
        status: 200,
        body: { resourceType: 'Bundle', id: crypto.randomUUID(), type: 'transaction-response', entry: responseEntries },
      };
    }

    const results: OpResult[] = [];
    let outerHeaders: Record<string, string> | undefined;
    if (logic === 'parallel') {
      // BundleHandlerParallelOperations: every entry at once; a throttled entry is retried once
      // after the wait, on its own (a 429 stops nothing else).
      const seen = new Set<string>();
      const duplicate = targets.map((t) => {
        if (!t?.key) return false;
        if (seen.has(t.key)) return true;
        seen.add(t.key);
        return false;
      });
      // All PUTs of the bundle go to one SQL merge; above the merge capacity it is throttled (PR #5029).
      // Bundles merge from arrival to answer: one that arrives while the capacity is taken is throttled (see handle).
      const mergeThrottled = ctx.mergeThrottled === true;
      {
        const firstTry = entries.map((_, i) => !duplicate[i] && faults.throttleEntry());
        results.push(
          ...(await Promise.all(
            entries.map(async (entry, i): Promise<OpResult> => {
              if (duplicate[i]) return fail(ctx, 400, 'duplicate', 'A resource should only appear once in each Bundle.');
              if (mergeThrottled && targets[i]?.method === 'PUT') return { ...entryThrottled(ctx), headers: { 'retry-after': '1' } };
              if (firstTry[i]) {
                await sleep(entryRetryWaitMs());
                if (faults.throttleEntry()) return entryThrottled(ctx);
              }
              return runEntry(ctx, entry, targets[i]);
            }),
          )),
        );
      }
    } else {
      // BundleHandler (sequential): a throttled entry is retried once after the wait; throttled
      // again, it and every later entry answer the same 429, and the outer answer carries the wait.
      let stopped: OpResult | undefined;
      for (let i = 0; i < entries.length; i++) {
        if (!stopped && faults.throttleEntry()) {
          await sleep(entryRetryWaitMs());
          if (faults.throttleEntry()) {
            stopped = entryThrottled(ctx);
            outerHeaders = stopped.headers;
          }
        }
        results.push(stopped ?? (await runEntry(ctx, entries[i], targets[i])));
      }
    }
    const out = results.map(toResponseEntry);
    out.forEach((e) => countEntryStatus(e.response!.status));
    return {
      status: 200,
      headers: outerHeaders,
      body: { resourceType: 'Bundle', id: crypto.randomUUID(), type: 'batch-response', entry: out },
    };
  }

  // ---------------------------------------------------------------- HTTP

  function capabilityStatement(): CapabilityStatement {
    return {
      resourceType: 'CapabilityStatement',
      status: 'active',
      date: new Date().toISOString(),
      kind: 'instance',
      software: { name: 'Microsoft FHIR Server (local stand-in)', version: '4.0.0' },
      implementation: { description: 'AHDS FHIR stand-in', url: fhirUrl },
      fhirVersion: (opts.fhirVersion ?? '4.0.1') as '4.0.1',
      format: ['application/fhir+json', 'json'],
      rest: [
        {
          mode: 'server',
          security: {
            extension: [
              {
                url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
                extension: [
                  { url: 'token', valueUri: `${entra.authorityHost}/${entra.tenantId}/oauth2/v2.0/token` },
                  { url: 'authorize', valueUri: `${entra.authorityHost}/${entra.tenantId}/oauth2/v2.0/authorize` },
                ],
              },
            ],
            service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'OAuth' }] }],
          },
          resource: resourceTypeNames().map((type) => ({
            type: type as 'Patient',
            interaction: ['read', 'vread', 'update', 'delete', 'history-instance', 'create', 'search-type'].map((code) => ({
              code: code as 'read',
            })),
            versioning: versioningOf(type),
            updateCreate: true,
            searchParam: [
              { name: '_lastUpdated', type: 'date' },
              { name: '_id', type: 'token' },
            ],
          })),
          interaction: [{ code: 'batch' }, { code: 'transaction' }],
        },
      ],
    };
  }

  function send(res: ServerResponse, ctx: { correlationId: string }, r: OpResult): void {
    stats.byStatus[String(r.status)] = (stats.byStatus[String(r.status)] ?? 0) + 1;
    const headers: Record<string, string | number> = { 'x-request-id': ctx.correlationId, ...(r.headers ?? {}) };
    if (r.status === 204 || r.body === undefined) {
      res.writeHead(r.status, headers);
      res.end();
      return;
    }
    const text = JSON.stringify(r.body);
    stats.bytesOut += Buffer.byteLength(text);
    headers['content-type'] = FHIR_JSON;
    headers['content-length'] = Buffer.byteLength(text);
    res.writeHead(r.status, headers);
    res.end(text);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    stats.requests++;
    const correlationId = crypto.randomUUID();
    const base: RequestContext = { correlationId, principal: { canWrite: false } };
    const url = new URL(req.url ?? '/', fhirUrl);
    const method = (req.method ?? 'GET').toUpperCase();
    const path = url.pathname;

    // ThrottlingMiddleware runs first: over capacity, 429 at once, the body read by nobody.
    if (!cap.tryEnter()) {
      stats.capacityThrottled++;
      stats.byStatus['429'] = (stats.byStatus['429'] ?? 0) + 1;
      req.resume();
      res.writeHead(429, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(THROTTLED_BODY),
        ...cap.retryHeaders(),
      });
      res.end(THROTTLED_BODY);
      return;
    }
    let release = () => undefined as void;
    try {
      let body: unknown;
      let rawBody = '';
      if (method === 'POST' || method === 'PUT' || method === 'PATCH') {
        rawBody = await readBody(req);
        stats.bytesIn += Buffer.byteLength(rawBody);
      }
      let badJson = false;
      if (rawBody.trim()) {
        try {
          body = JSON.parse(rawBody);
        } catch {
          badJson = true;
        }
      }
      const isBundlePost = method === 'POST' && (path === '/' || path === '');
      const bundle = isBundlePost && !badJson && (body as Resource | undefined)?.resourceType === 'Bundle' ? (body as Bundle) : undefined;
      const entryCount = bundle ? Math.min(bundle.entry?.length ?? 0, maxEntries) : 0;
      // Claimed before the latency: a slow request holds its resources while a copy of it arrives.
      const keys = bundle
        ? (bundle.entry ?? []).map((e) => (e.request?.method === 'GET' ? undefined : entryTarget(e)?.key))
        : method === 'PUT' || method === 'DELETE'
          ? [path.replace(/^\/+/, '').split('/').slice(0, 2).join('/')]
          : [];
      const releaseKeys = claim(base, keys);
      const merging =
        bundle?.type === 'batch' &&
        String(req.headers['x-bundle-processing-logic'] ?? '')
          .trim()
          .toLowerCase() === 'parallel';
      const mergeSeq = base.seq!;
      base.mergeThrottled = merging && activeMerges.size >= mergeCapacity;
      if (merging) activeMerges.add(mergeSeq);
      release = () => {
        releaseKeys();
        activeMerges.delete(mergeSeq);
      };

      // Over the 100 s the platform allows, the request answers 408 (Azure API for FHIR release
      // notes, May 2024; fhir-server BundleConfiguration.MaxExecutionTimeInSeconds).
      const planned = (faults.current.latencyMs ?? 0) + entryCount * (faults.current.perEntryLatencyMs ?? 0);
      if (planned > bundleTimeLimitMs) {
        await new Promise((resolve) => setTimeout(resolve, bundleTimeLimitMs));
        send(res, base, fail(base, 408, 'too-long', 'Request timed out.'));
        return;
      }
      await faults.delay(entryCount);
      const fault = faults.next(path);
      if (fault?.kind === 'reset') {
        stats.byStatus.reset = (stats.byStatus.reset ?? 0) + 1;
        req.socket.destroy();
        return;
      }
      if (fault) {
        const st = fault.status;
        const r =
          st === 429
            ? fail(
                base,
                429,
                'throttled',
                'The maximum number of concurrent API calls on this instance was reached.',
                faults.retryAfterHeaders(),
              )
            : st === 503
              ? fail(base, 503, 'transient', 'The service is temporarily unavailable. Please retry.', faults.retryAfterHeaders())
              : st === 408
                ? fail(base, 408, 'timeout', 'The request timed out.')
                : fail(base, 500, 'exception', 'An internal server error occurred.');
        send(res, base, r);
        return;
      }

      if (method === 'GET' && path === '/metadata') {
        send(res, base, { status: 200, body: capabilityStatement() });
        return;
      }

      const principal = await authenticate(req);
      if (!principal) {
        send(res, base, {
          ...fail(base, 401, 'login', 'Authentication failed.'),
          headers: {
            'www-authenticate': `Bearer authorization_uri="${entra.authorityHost}/${entra.tenantId}", resource_id="${fhirUrl}", realm="${fhirUrl}"`,
          },
        });
        return;
      }
      const ctx: RequestContext = { correlationId, principal, seq: base.seq, mergeThrottled: base.mergeThrottled };
      if (badJson) {
        send(res, ctx, fail(ctx, 400, 'invalid', 'The request body could not be parsed as JSON.'));
        return;
      }

      if (isBundlePost) {
        if (!bundle) {
          send(res, ctx, fail(ctx, 400, 'invalid', 'The request body must be a Bundle of type batch or transaction.'));
          return;
        }
        if (bundle.type !== 'batch' && bundle.type !== 'transaction') {
          send(res, ctx, fail(ctx, 400, 'invalid', `Bundle type '${bundle.type}' is not supported: use batch or transaction.`));
          return;
        }
        const n = bundle.entry?.length ?? 0;
        stats.entries += n;
        if (n > maxEntries) {
          send(res, ctx, fail(ctx, 400, 'invalid', `The number of entries in the bundle exceeded the configured limit of ${maxEntries}.`));
          return;
        }
        // No FHIR data action at all: the bundle is refused as a whole (BundleHandler.cs).
        if (principal.hasDataRole === false) {
          send(res, ctx, fail(ctx, 403, 'forbidden', 'Authorization failed.'));
          return;
        }
        // The bundle is parsed as a whole: a parse error in any entry refuses all of it.
        const parseIssues = (bundle.entry ?? []).flatMap((e, i) =>
          e.resource
            ? (parseErrors(e.resource as Resource) ?? []).map((issue) => ({
                ...issue,
                diagnostics: `Bundle.entry[${i}].resource: ${issue.diagnostics}`,
              }))
            : [],
        );
        if (parseIssues.length) {
          const [first, ...rest] = parseIssues;
          send(res, ctx, { status: 400, body: outcome(ctx.correlationId, 'invalid', first!.diagnostics ?? 'Invalid bundle', rest) });
          return;
        }
        const header = req.headers['x-bundle-processing-logic'];
        const value = typeof header === 'string' ? header.trim().toLowerCase() : undefined;
        const valid = value === undefined || value === 'parallel' || value === 'sequential';
        const r = await processBundle(ctx, bundle, value === 'parallel' ? 'parallel' : 'sequential');
        if (!valid && r.status === 200) {
          // BundleHandler.AddFinalOperationOutcomesIfApplicable: one more entry than asked for.
          const extra: BundleEntry = {
            response: {
              status: '405',
              outcome: {
                resourceType: 'OperationOutcome',
                id: ctx.correlationId,
                issue: [
                  {
                    severity: 'warning',
                    code: 'invalid',
                    diagnostics:
                      'The bundle processing logic provided was invalid. The bundle was processed using the default processing logic.',
                  },
                ],
              },
            },
          };
          (r.body as Bundle).entry = [...((r.body as Bundle).entry ?? []), extra];
        }
        send(res, ctx, r);
        return;
      }

      const relUrl = path.replace(/^\/+/, '') + url.search;
      const ifMatch = parseIfMatch(req.headers['if-match'] as string | undefined);
      const conflict = method === 'PUT' || method === 'DELETE' ? await awaitTurn(ctx, keys[0]) : undefined;
      send(res, ctx, conflict ?? (await execute(ctx, method, relUrl, body, ifMatch)));
    } finally {
      release();
      cap.leave();
    }
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const ctx = { correlationId: crypto.randomUUID() };
      if (!res.headersSent)
        send(res, ctx, fail({ ...ctx, principal: { canWrite: false } }, 500, 'exception', String((err as Error)?.message ?? err)));
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  fhirUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    fhirUrl,
    audience: fhirUrl,
    entra,
    faults,
    store,
    cap,
    setCapacity(capacity) {
      cap.capacity = capacity;
    },
    stats: () => ({ ...stats, byStatus: { ...stats.byStatus }, byEntryStatus: { ...stats.byEntryStatus } }),
    resetStats: () => {
      stats = emptyStats();
    },
    async snapshot(type?: string): Promise<Resource[]> {
      const out: Resource[] = [];
      for (const t of type ? [type] : store.resourceTypes()) {
        for (const id of store.ids(t).sort()) {
          const r = await store.read(t, id);
          if (r) out.push(r);
        }
      }
      return out;
    },
    read: (type, id) => store.read(type, id),
    versionCount: (type, id) => store.head(type, id)?.version ?? 0,
    setWriterRole(clientIdOrOid, hasRole) {
      if (hasRole) readers.delete(clientIdOrOid);
      else readers.add(clientIdOrOid);
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      unlinkLifetime();
      if (ownEntra) await entra.close();
    },
  };
}
