import type { AxiosInstance, AxiosResponse } from 'axios';
import type { Config, RetrySettings } from '../config/load';
import type { TargetKind } from '../target/config';
import { canonicalJson } from '../fhir/canonical';
import { keyString, type SyncedResource } from '../fhir/types';
import { attemptsOf, createHttpClient, requestIdOf, type TokenSource } from '../http/client';
import { safeDetail, UpstreamError } from '../http/errors';
import { backoffMs, isRetryableStatus, serverRetryAfterMs } from '../http/retry-policy';
import { DEPENDENCIES } from '../telemetry/names';
import type { Telemetry } from '../telemetry/telemetry';
import { AdaptiveLimiter } from './adaptive-limiter';
import { planBatches } from './batching';
import type { BundleBudget } from './bundle-budget';
import { batchResponseSchema, searchsetSchema, storedResourceSchema } from './schemas';
import { ServerClock } from './server-clock';
import { checkTarget } from './target-check';

export type WriteOutcome = 'created' | 'updated' | 'unchanged' | 'failed';

/** What happened to one resource. Identifiers and status only: safe for logs and dead letters. */
export interface WriteResult {
  resourceType: string;
  id: string;
  outcome: WriteOutcome;
  status?: number;
  reason?: string;
  attempts: number;
  versionId?: string;
  /** The server's correlation id of the answer that decided the outcome (AHDS: X-Request-Id). */
  requestId?: string;
}

/** Who is writing: the run id travels to the target's audit log (AHDS: an X-MS-AZUREFHIR-AUDIT- header). */
export interface WriteContext {
  runId?: string;
  /** Resources that travel in the same bundle as those written (the audit trail's Provenance). */
  companions?: BundleCompanions;
}

/**
 * Resources written in the same bundle as the resources they are about (src/audit/trail.ts: the
 * Provenance of what the bundle writes). In the same bundle because AHDS's X-Provenance header
 * attaches a Provenance only to a transaction's first resource; placed after the resources, so a
 * target that processes a batch in order (HAPI FHIR) holds a Provenance's targets when it checks them.
 */
export interface BundleCompanions {
  /** The companions of a bundle of resources (none: the bundle goes alone). */
  for(resources: readonly SyncedResource[]): SyncedResource[];
  /** Told the answers of both once the bundle settled, before its results are handed on. */
  settled(resources: readonly WriteResult[], companions: readonly SyncedResource[], answers: readonly WriteResult[]): Promise<void>;
}

const FHIR_JSON = 'application/fhir+json';

/** The headers of a batch bundle: entries processed in parallel (AHDS's default is sequential). */
export const BATCH_HEADERS = { 'Content-Type': FHIR_JSON, 'x-bundle-processing-logic': 'parallel' } as const;

/** A batch bundle of upserts (PUT Type/id), serialised canonically: what a bundle's body is. */
export function batchBody(resources: readonly SyncedResource[]): string {
  return batchBodyWithFullUrls(resources, undefined);
}

/**
 * The same bundle, each entry with fullUrl {base}/Type/id when a base is given: HL7's validator (HAPI
 * FHIR's request validation) refuses a bundle entry that has a resource and no fullUrl.
 */
export function batchBodyWithFullUrls(resources: readonly SyncedResource[], fullUrlBase: string | undefined): string {
  const entry = resources.map((resource) => ({
    ...(fullUrlBase ? { fullUrl: `${fullUrlBase}/${resource.resourceType}/${resource.id}` } : {}),
    resource,
    request: { method: 'PUT', url: `${resource.resourceType}/${resource.id}` },
  }));
  return canonicalJson({ resourceType: 'Bundle', type: 'batch', entry });
}

/**
 * How the writer treats a FHIR R4 target. The defaults are AHDS's (microsoft/fhir-server); a generic
 * target turns the AHDS-only parts off (audit header, 500 entries, processing-logic header).
 */
export interface WriterOptions {
  /** The target's client: base URL, auth, telemetry and the retry policy of single requests. */
  http: AxiosInstance;
  batchSize: number;
  maxConcurrency: number;
  initialConcurrency: number;
  retry: RetrySettings;
  /**
   * Timeout of one bundle request. AHDS may legitimately work on a bundle for 100 s
   * (BundleConfiguration.MaxExecutionTimeInSeconds) and answers 408 past it; waiting longer than
   * that means a bundle that timed out here is no longer running there. Default 120 s.
   */
  bundleTimeoutMs?: number;
  /** How long the server may still work on a bundle after it was sent (AHDS: 100 s). */
  serverBudgetMs?: number;
  /** Longest server-requested wait honoured (AHDS's x-ms-retry-after-ms goes up to 60 s). */
  maxServerWaitMs?: number;
  /** Resubmissions of an entry answered 409/412 (concurrent update of one resource). Default 3. */
  conflictRetries?: number;
  /** Header carrying the run id into the target's audit log; undefined: none. */
  auditHeader?: string;
  /** Most entries the target takes in one bundle (AHDS: 500, fixed). */
  maxBundleEntries?: number;
  /** Extra headers of every bundle request (AHDS: x-bundle-processing-logic: parallel). */
  bundleHeaders?: Record<string, string>;
  /** The app-wide ceiling of bundles in flight, shared across processes; absent: only this process's limiter. */
  budget?: BundleBudget;
  /** batch (default): bundles of PUT entries; single: one PUT per resource, for a target without batch (src/target). */
  bundleMode?: 'batch' | 'single';
  /** Base of each entry's fullUrl ({base}/Type/id); undefined (AHDS): no fullUrl. */
  fullUrlBase?: string;
  telemetry?: Telemetry;
  random?: () => number;
  /** Resource types whose target policy is checked once before the first write (target-check.ts); none when absent. */
  checkTypes?: readonly string[];
  /** How the writer waits (tests record the waits instead of sleeping them). */
  sleep?: (ms: number) => Promise<void>;
  /** How its errors name the target (targetName of TARGET_KIND); default the AHDS FHIR service. */
  targetName?: string;
}

/**
 * How errors name the target of a TARGET_KIND, at the start of a sentence: an operator of a HAPI
 * server must not be sent looking for an AHDS service, nor given AHDS's role names.
 */
export function targetName(kind: TargetKind): string {
  return kind === 'ahds' ? 'AHDS FHIR service' : 'Target FHIR server';
}

export const AHDS_AUDIT_HEADER = 'X-MS-AZUREFHIR-AUDIT-RUN-ID';
const DEFAULT_BUNDLE_TIMEOUT_MS = 120_000;
const AHDS_SERVER_BUDGET_MS = 100_000;
const AHDS_MAX_SERVER_WAIT_MS = 60_000;
/**
 * Entries answered 429 are resubmitted after at least this (or RETRY_MAX_DELAY_MS if shorter): AHDS
 * already retried them once after 1-15 s, and in parallel mode their wait does not reach the outer answer.
 */
const ENTRY_THROTTLE_FLOOR_MS = 1_000;
/** Network failures that mean the request never reached the server. */
const NEVER_SENT = /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ENETUNREACH|EHOSTUNREACH/;
/** Versions remembered per process: an answer with the version we last saw is certainly "unchanged". */
const REMEMBERED_VERSIONS = 100_000;

/** One bundle's fate: per-entry results, or a whole-request failure. */
type BundleAnswer =
  | { kind: 'entries'; results: WriteResult[]; waitMs?: number; epoch: number }
  | { kind: 'whole'; error: UpstreamError; sentAt: number; ambiguous: boolean; epoch: number };

/**
 * Writes to a FHIR R4 target (AHDS by default): PUT upserts in batch bundles under an adaptive limit
 * and, when configured, an app-wide budget. Each bundle is POSTed once at a time and never re-sent
 * while a copy may still run on the server; whole-request failures are retried by this writer (not by
 * axios), transient entries are resubmitted alone, and a whole-bundle 400 is split until only the bad
 * resources remain.
 */
export class AhdsWriter {
  readonly http: AxiosInstance;
  readonly limiter: AdaptiveLimiter;
  readonly clock = new ServerClock();
  private readonly o: Required<Omit<WriterOptions, 'auditHeader' | 'budget' | 'telemetry' | 'checkTypes' | 'fullUrlBase'>> &
    Pick<WriterOptions, 'auditHeader' | 'budget' | 'telemetry' | 'checkTypes' | 'fullUrlBase'>;
  private targetChecked?: Promise<void>;
  private readonly versions = new Map<string, string>();

  constructor(options: WriterOptions) {
    this.o = {
      bundleTimeoutMs: DEFAULT_BUNDLE_TIMEOUT_MS,
      serverBudgetMs: AHDS_SERVER_BUDGET_MS,
      maxServerWaitMs: AHDS_MAX_SERVER_WAIT_MS,
      conflictRetries: 3,
      targetName: targetName('ahds'),
      bundleHeaders: { 'x-bundle-processing-logic': 'parallel' },
      bundleMode: 'batch',
      maxBundleEntries: 500,
      random: Math.random,
      sleep,
      ...options,
    };
    this.http = options.http;
    this.limiter = new AdaptiveLimiter(options.initialConcurrency, options.maxConcurrency);
  }

  /** One PUT upsert. Failures come back as a failed WriteResult, never thrown, except outages. */
  async put(resource: SyncedResource, context: WriteContext = {}): Promise<WriteResult> {
    const { resourceType, id } = resource as { resourceType: string; id: string };
    const sleep = this.o.sleep;
    await this.ensureTarget();
    for (let conflicts = 0; ; conflicts++) {
      const sentAt = Date.now();
      try {
        const response = await this.http.put(`/${resourceType}/${encodeURIComponent(id)}`, canonicalJson(resource), {
          headers: { 'Content-Type': FHIR_JSON, ...this.auditHeaders(context) },
        });
        this.clock.observe(response.headers.date, sentAt, Date.now());
        const stored = storedResourceSchema.safeParse(response.data);
        const meta = stored.success ? stored.data.meta : undefined;
        const versionId = meta?.versionId ?? versionFromEtag(response.headers.etag);
        const outcome = this.classify(response.status, {
          resourceType,
          id,
          versionId,
          lastUpdated: meta?.lastUpdated ?? response.headers['last-modified'],
          sentAt,
        });
        return {
          resourceType,
          id,
          outcome,
          status: response.status,
          attempts: attemptsOf(response.config),
          versionId,
          requestId: requestIdOf(response.headers),
        };
      } catch (error) {
        if (!(error instanceof UpstreamError)) throw error;
        if (error.code === 'Conflict' && conflicts < this.o.conflictRetries) {
          await sleep(backoffMs(conflicts + 1, this.o.retry, this.o.random));
          continue;
        }
        if (error.statusCode === 403) throw forbiddenOutage(this.o.targetName, error.requestId);
        if (!error.isOutage && error.statusCode !== 401) {
          return {
            resourceType,
            id,
            outcome: 'failed',
            status: error.statusCode,
            reason: withRequestId(error.message, error.requestId),
            attempts: error.attempts + conflicts,
            requestId: error.requestId,
          };
        }
        throw error;
      }
    }
  }

  /**
   * Writes any number of resources: planned into bundles, sent through the adaptive limiter.
   * Results come back in input order.
   */
  async writeAll(resources: readonly SyncedResource[], context: WriteContext = {}): Promise<WriteResult[]> {
    const batches = planBatches(resources as Array<SyncedResource & { id: string }>, this.o.batchSize, this.o.maxBundleEntries);
    // Bundles go out in parallel, except that a bundle holding a later version of a resource waits
    // for the bundle with the earlier one: otherwise the service could apply them in either order.
    const bundleOf = new Map<string, number>();
    const written: Array<Promise<WriteResult[]>> = [];
    batches.forEach((batch, i) => {
      const after = new Set<number>();
      for (const r of batch) {
        const key = keyString(r);
        const earlier = bundleOf.get(key);
        if (earlier !== undefined) after.add(earlier);
        bundleOf.set(key, i);
      }
      written[i] =
        after.size === 0
          ? this.writeBatch(batch, context)
          : Promise.all([...after].map((j) => written[j])).then(() => this.writeBatch(batch, context));
    });
    const results = await Promise.all(written);
    return results.flat();
  }

  /**
   * One bundle (no duplicates), then resubmissions. Settles only when no copy of it can still be
   * running on the server, so a bundle with a later version of one of its resources, sent after this
   * settles, can never be overtaken by it.
   */
  async writeBatch(resources: readonly SyncedResource[], context: WriteContext = {}): Promise<WriteResult[]> {
    const { companions, ...bare } = context;
    const extra = companions?.for(resources) ?? [];
    if (extra.length === 0) return this.writeEntries(resources, bare);
    // The companions must fit in the bundle with what they are about: a bundle that would pass the
    // target's most entries is written as two.
    if (resources.length > 1 && resources.length + extra.length > this.o.maxBundleEntries) {
      const mid = Math.ceil(resources.length / 2);
      const halves = await Promise.all([this.writeBatch(resources.slice(0, mid), context), this.writeBatch(resources.slice(mid), context)]);
      return halves.flat();
    }
    // One PUT at a time (a target without batch): the resources first, so a Provenance's targets exist.
    const answers =
      this.o.bundleMode === 'single'
        ? [...(await this.writeEntries(resources, bare)), ...(await this.writeEntries(extra, bare))]
        : await this.writeEntries([...resources, ...extra], bare);
    const own = answers.slice(0, resources.length);
    await companions!.settled(own, extra, answers.slice(resources.length));
    return own;
  }

  /** A bundle's entries as they are (writeBatch without companions). */
  private async writeEntries(resources: readonly SyncedResource[], context: WriteContext): Promise<WriteResult[]> {
    if (this.o.bundleMode === 'single') return Promise.all(resources.map((r) => this.limiter.run(() => this.put(r, context))));
    const sleep = this.o.sleep;
    const results = new Map<number, WriteResult>();
    let pending = resources.map((resource, index) => ({ resource, index, tries: 0, conflicts: 0 }));
    const started = Date.now();
    let wholeFailures = 0;
    let waitMs = 0;
    while (pending.length > 0) {
      if (waitMs > 0) await sleep(waitMs);
      const answer = await this.send(
        pending.map((p) => p.resource),
        context,
      );
      if (answer.kind === 'whole') {
        const { error } = answer;
        if ((error.statusCode === 400 && !error.message.includes('exceeded the configured limit')) || error.statusCode === 422) {
          // The whole bundle was refused for what some entries hold (AHDS: a parse error anywhere;
          // HAPI FHIR: its request validator found an error in one entry and answers 422).
          // Halves are written on their own until each refused bundle is one resource.
          if (pending.length === 1) {
            const p = pending[0]!;
            results.set(
              p.index,
              failed(p.resource, error.statusCode, withRequestId(error.message, error.requestId), p.tries + 1, error.requestId),
            );
            break;
          }
          const mid = Math.ceil(pending.length / 2);
          const halves = [pending.slice(0, mid), pending.slice(mid)];
          const answers = await Promise.all(
            halves.map((half) =>
              this.writeEntries(
                half.map((p) => p.resource),
                context,
              ),
            ),
          );
          halves.forEach((half, h) =>
            half.forEach((p, i) => results.set(p.index, { ...answers[h]![i]!, attempts: answers[h]![i]!.attempts + p.tries + 1 })),
          );
          break;
        }
        if (error.statusCode === 403) throw forbiddenOutage(this.o.targetName, error.requestId);
        const retryable = error.isOutage && ++wholeFailures < this.o.retry.maxAttempts && Date.now() - started < this.o.retry.maxTotalMs;
        // A bundle whose answer never came may still be running there: nothing that could overtake
        // it (its resubmission, or a later version once this settles) goes out before it is over.
        if (answer.ambiguous) await sleep(Math.max(0, answer.sentAt + this.o.serverBudgetMs - Date.now()));
        if (!retryable) throw withAttempts(error, wholeFailures + 1);
        this.o.telemetry?.retry('ahds', error.statusCode ?? 'network');
        waitMs = Math.min(this.o.maxServerWaitMs, error.retryAfterMs ?? backoffMs(wholeFailures || 1, this.o.retry, this.o.random));
        continue;
      }
      const again: typeof pending = [];
      let forbiddenCount = 0;
      answer.results.forEach((result, i) => {
        const item = pending[i]!;
        item.tries++;
        const status = result.status ?? 0;
        if (status === 403) forbiddenCount++;
        const conflict = status === 409 || status === 412;
        const resubmit =
          result.outcome === 'failed' &&
          ((isRetryableStatus(status) && item.tries < this.o.retry.maxAttempts) || (conflict && item.conflicts++ < this.o.conflictRetries));
        if (resubmit) again.push(item);
        else results.set(item.index, { ...result, attempts: item.tries });
      });
      // Every entry refused: the identity has no write role (yet); hundreds of dead letters would hide that.
      if (forbiddenCount === answer.results.length) throw forbiddenOutage(this.o.targetName, answer.results[0]?.requestId);
      const throttled = answer.results.some((r) => r.status === 429);
      waitMs =
        again.length === 0
          ? 0
          : Math.min(
              this.o.maxServerWaitMs,
              Math.max(
                answer.waitMs ?? 0,
                throttled ? Math.min(ENTRY_THROTTLE_FLOOR_MS, this.o.retry.maxDelayMs) : 0,
                backoffMs(Math.max(...again.map((p) => p.tries)), this.o.retry, this.o.random),
              ),
            );
      pending = again;
    }
    return resources.map((_, i) => results.get(i)!);
  }

  /**
   * One POST of a bundle, in a limiter slot (and a budget slot when configured), never retried by
   * the HTTP client: this writer decides what is resent and when. Congestion (429, 408, 5xx, no
   * answer) lowers the limit once per episode: the epoch the bundle was sent in says whether the
   * limit was already lowered for the same congestion.
   */
  private async send(resources: readonly SyncedResource[], context: WriteContext): Promise<BundleAnswer> {
    await this.ensureTarget();
    return this.limiter.run(async () => {
      const epoch = this.limiter.epoch;
      const release = await this.o.budget?.acquire();
      const sentAt = Date.now();
      let response: AxiosResponse;
      try {
        response = await this.http.post('/', batchBodyWithFullUrls(resources, this.o.fullUrlBase), {
          headers: { 'Content-Type': FHIR_JSON, ...this.o.bundleHeaders, ...this.auditHeaders(context) },
          timeout: this.o.bundleTimeoutMs,
          'axios-retry': { retries: 0 },
        });
      } catch (error) {
        if (!(error instanceof UpstreamError)) throw error;
        const congested = error.isOutage;
        if (congested) this.limiter.onThrottle(epoch);
        // No HTTP answer: unless the connection was never made, the request may have reached the
        // server and still be running there.
        const ambiguous =
          error.statusCode === undefined && (error.code === 'Timeout' || (error.code === 'Network' && !NEVER_SENT.test(error.message)));
        return { kind: 'whole', error, sentAt, ambiguous, epoch };
      } finally {
        release?.();
      }
      this.clock.observe(response.headers.date, sentAt, Date.now());
      const results = this.entryResults(response, resources, sentAt);
      if (results.some((r) => r.status === 429 || r.status === 408 || (r.status ?? 0) >= 500)) this.limiter.onThrottle(epoch);
      else this.limiter.onSuccess();
      return { kind: 'entries', results, waitMs: serverRetryAfterMs(response.headers as Record<string, unknown>), epoch };
    });
  }

  /** The target check, once per writer; a failed check is not kept, so a transient failure is retried. */
  ensureTarget(): Promise<void> {
    if (!this.o.checkTypes) return Promise.resolve();
    this.targetChecked ??= checkTarget(this.http, this.o.checkTypes, this.o.targetName).catch((error: unknown) => {
      if (!(error instanceof UpstreamError && error.code === 'InvalidResponse')) this.targetChecked = undefined;
      throw error;
    });
    return this.targetChecked;
  }

  private entryResults(response: AxiosResponse, resources: readonly SyncedResource[], sentAt: number): WriteResult[] {
    const requestId = requestIdOf(response.headers);
    const parsed = batchResponseSchema.safeParse(response.data);
    // An invalid processing-logic header makes AHDS append one warning entry: extra entries are ignored.
    if (!parsed.success || parsed.data.entry.length < resources.length) {
      const error = new UpstreamError(
        'ahds',
        'InvalidResponse',
        withRequestId(`${this.o.targetName} answered a batch with a bundle that does not match the request.`, requestId),
        response.status,
      );
      error.requestId = requestId;
      throw error;
    }
    return resources.map((r, i) => {
      const entry = parsed.data.entry[i]!;
      const status = Number.parseInt(entry.response.status, 10);
      const stored = storedResourceSchema.safeParse(entry.resource);
      const meta = stored.success ? stored.data.meta : undefined;
      const versionId = meta?.versionId ?? versionFromEtag(entry.response.etag);
      const base = { resourceType: r.resourceType, id: r.id!, status, attempts: 1, versionId, requestId };
      if (status >= 200 && status < 300) {
        const lastUpdated = meta?.lastUpdated ?? entry.response.lastModified;
        const outcome = this.classify(status, { resourceType: r.resourceType, id: r.id!, versionId, lastUpdated, sentAt });
        // HAPI FHIR says so itself when it kept the version (and then gives no lastModified).
        return { ...base, outcome: status === 200 && saysNoChange(entry.response.outcome) ? ('unchanged' as const) : outcome };
      }
      const detail = safeDetail(entry.response.outcome);
      return {
        ...base,
        outcome: 'failed' as const,
        reason: withRequestId(`${this.o.targetName} answered ${status}${detail ? ` (${detail})` : ''}.`, requestId),
      };
    });
  }

  /**
   * 201 is created. A 200 is unchanged when it carries the version this process last saw of the
   * resource, or when the stored version was stamped before this request reached the server (by the
   * server's clock, see ServerClock); otherwise updated. A 200 of version 1 was never an update.
   */
  private classify(
    status: number,
    at: { resourceType: string; id: string; versionId?: string; lastUpdated?: string; sentAt: number },
  ): WriteOutcome {
    const key = `${at.resourceType}/${at.id}`;
    const known = this.versions.get(key);
    if (at.versionId) this.remember(key, at.versionId);
    if (status === 201) return 'created';
    if (at.versionId !== undefined && known !== undefined) return known === at.versionId ? 'unchanged' : 'updated';
    if (at.versionId === '1') return 'unchanged';
    return classify(status, at.lastUpdated, this.clock.earliestServerTime(at.sentAt));
  }

  private remember(key: string, versionId: string): void {
    this.versions.delete(key);
    this.versions.set(key, versionId);
    if (this.versions.size > REMEMBERED_VERSIONS) this.versions.delete(this.versions.keys().next().value!);
  }

  private auditHeaders(context: WriteContext): Record<string, string> {
    return this.o.auditHeader && context.runId && /^[A-Za-z0-9._:-]{1,64}$/.test(context.runId)
      ? { [this.o.auditHeader]: context.runId }
      : {};
  }

  /** Current version of a stored resource, or undefined (verification and reconciliation). */
  async read(resourceType: string, id: string): Promise<Record<string, unknown> | undefined> {
    try {
      const response = await this.http.get(`/${resourceType}/${encodeURIComponent(id)}`);
      return response.data as Record<string, unknown>;
    } catch (error) {
      if (error instanceof UpstreamError && error.code === 'NotFound') return undefined;
      throw error;
    }
  }

  /**
   * Pages through a search by its next links (AHDS pages with continuation tokens only). Only
   * resources of the searched type are yielded: AHDS puts an OperationOutcome entry (with an id)
   * first whenever it has something to say about the search (fhir-server BundleFactory).
   */
  async *search(resourceType: string, params: Record<string, string>): AsyncGenerator<Array<Record<string, unknown>>> {
    let url: string | undefined = `/${resourceType}?${new URLSearchParams(params).toString()}`;
    while (url) {
      const response = await this.http.get(url);
      const parsed = searchsetSchema.safeParse(response.data);
      if (!parsed.success)
        throw new UpstreamError(
          'ahds',
          'InvalidResponse',
          `${this.o.targetName} answered a ${resourceType} search with something that is not a Bundle.`,
          response.status,
        );
      yield (parsed.data.entry ?? []).flatMap((e) =>
        e.resource?.resourceType === resourceType && (e.search?.mode ?? 'match') === 'match' ? [e.resource as Record<string, unknown>] : [],
      );
      url = parsed.data.link?.find((l) => l.relation === 'next')?.url;
    }
  }

  async delete(resourceType: string, id: string): Promise<void> {
    await this.http.delete(`/${resourceType}/${encodeURIComponent(id)}`);
  }

  /**
   * Soft-deletes resources in batch bundles of DELETE entries, under the same limiter and budget as
   * writes. Returns how many the server confirmed (AHDS answers 204, also for what is already gone);
   * a failed entry is retried as a single DELETE so its error surfaces.
   */
  async deleteAll(resourceType: string, ids: readonly string[], context: WriteContext = {}): Promise<number> {
    let deleted = 0;
    const bundles: string[][] = [];
    for (let i = 0; i < ids.length; i += this.o.batchSize) bundles.push(ids.slice(i, i + this.o.batchSize));
    await Promise.all(
      bundles.map((chunk) =>
        this.limiter.run(async () => {
          const release = await this.o.budget?.acquire();
          try {
            const body = canonicalJson({
              resourceType: 'Bundle',
              type: 'batch',
              entry: chunk.map((id) => ({ request: { method: 'DELETE', url: `${resourceType}/${id}` } })),
            });
            const response = await this.http.post('/', body, {
              headers: { 'Content-Type': FHIR_JSON, ...this.o.bundleHeaders, ...this.auditHeaders(context) },
              timeout: this.o.bundleTimeoutMs,
            });
            const parsed = batchResponseSchema.safeParse(response.data);
            const statuses = parsed.success ? parsed.data.entry.map((e) => Number.parseInt(e.response.status, 10)) : [];
            for (let i = 0; i < chunk.length; i++) {
              const status = statuses[i] ?? 0;
              if (status >= 200 && status < 300) deleted++;
              else {
                await this.delete(resourceType, chunk[i]!);
                deleted++;
              }
            }
          } finally {
            release?.();
          }
        }),
      ),
    );
    return deleted;
  }
}

/**
 * The AHDS writer the connector uses, with its HTTP client built from the settings. `checkTypes` are
 * the carried types (SYNC_RESOURCE_TYPES): the target check asks only about those.
 */
export function createAhdsWriter(
  settings: Config['ahds'],
  httpSettings: Config['http'],
  auth: TokenSource,
  telemetry: Telemetry,
  extra: Partial<WriterOptions> & Required<Pick<WriterOptions, 'checkTypes'>>,
): AhdsWriter {
  const retry = { ...httpSettings.retry, maxServerWaitMs: AHDS_MAX_SERVER_WAIT_MS };
  const http = createHttpClient({
    side: 'ahds',
    baseURL: settings.fhirUrl,
    timeoutMs: httpSettings.timeoutMs,
    retry,
    telemetry,
    dependencyName: DEPENDENCIES.ahds,
    auth,
    headers: { Accept: FHIR_JSON },
  });
  return new AhdsWriter({
    http,
    batchSize: settings.batchSize,
    maxConcurrency: settings.maxConcurrency,
    initialConcurrency: settings.initialConcurrency,
    retry,
    bundleTimeoutMs: settings.bundleTimeoutMs,
    conflictRetries: settings.conflictRetries,
    serverBudgetMs: settings.serverTimeLimitMs,
    auditHeader: AHDS_AUDIT_HEADER,
    telemetry,
    ...extra,
  });
}

/**
 * 201 created; 200 is unchanged when the stored version predates `serverSentAtMs` (the server's
 * time when the request was sent), else updated. The comparison is made at the precision the server
 * gave: Last-Modified and batch entries' lastModified carry whole seconds.
 */
export function classify(status: number, lastModified: string | undefined, serverSentAtMs: number): WriteOutcome {
  if (status === 201) return 'created';
  const modified = lastModified ? Date.parse(lastModified) : Number.NaN;
  if (Number.isNaN(modified)) return 'updated';
  const wholeSeconds = !/\d{2}:\d{2}:\d{2}\.\d/.test(lastModified!);
  const sent = wholeSeconds ? Math.floor(serverSentAtMs / 1000) * 1000 : serverSentAtMs;
  return modified < sent ? 'unchanged' : 'updated';
}

function failed(resource: SyncedResource, status: number, reason: string, attempts: number, requestId?: string): WriteResult {
  return { resourceType: resource.resourceType, id: resource.id!, outcome: 'failed', status, reason, attempts, requestId };
}

/** A message that quotes the server's correlation id, for support tickets (it is not patient data). */
export function withRequestId(message: string, requestId: string | undefined): string {
  return requestId ? `${message.replace(/\.$/, '')} (X-Request-Id ${requestId}).` : message;
}

function forbiddenOutage(target: string, requestId: string | undefined): UpstreamError {
  // The role to ask for is AHDS's own; a generic server grants writes its own way.
  const remedy =
    target === targetName('ahds')
      ? "give the connector's identity the FHIR Data Writer role on the service (a new role assignment takes a few minutes to apply)"
      : "give the connector's client write access to the carried types on the server";
  const error = new UpstreamError(
    'ahds',
    'Forbidden',
    withRequestId(`${target} refused every write of a bundle (403): ${remedy}.`, requestId),
    403,
  );
  error.requestId = requestId;
  error.sideName = target;
  return error;
}

function withAttempts(error: UpstreamError, attempts: number): UpstreamError {
  const bare = error.message.replace(/\s*after \d+ attempt(?:\(s\)|s)?/, '').replace(/\.$/, '');
  const message = attempts > 1 ? `${bare} after ${attempts} attempts.` : `${bare}.`;
  const copy = new UpstreamError(error.side, error.code, withRequestId(message, error.requestId), error.statusCode, attempts, error.detail);
  copy.requestId = error.requestId;
  copy.retryAfterMs = error.retryAfterMs;
  if (error.sideName) copy.sideName = error.sideName;
  return copy;
}

/** An entry outcome coded SUCCESSFUL_UPDATE_NO_CHANGE (HAPI FHIR's storage response codes). */
function saysNoChange(outcome: unknown): boolean {
  const issues = (outcome as { issue?: Array<{ details?: { coding?: Array<{ code?: unknown }> } }> } | undefined)?.issue;
  return Array.isArray(issues) && issues.some((i) => i.details?.coding?.some((c) => c.code === 'SUCCESSFUL_UPDATE_NO_CHANGE'));
}

/** The version in an ETag: W/"3" (AHDS, HTTP answers), or "3" and bare 3 (HAPI FHIR's batch-response entries). */
function versionFromEtag(etag: unknown): string | undefined {
  const m = typeof etag === 'string' ? /^(?:W\/)?"?([^"]+)"?$/.exec(etag.trim()) : null;
  return m?.[1];
}

export function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}
