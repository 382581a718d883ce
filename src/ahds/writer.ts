import type { AxiosInstance } from 'axios';
import type { Config, RetrySettings } from '../config/load';
import { canonicalJson } from '../fhir/canonical';
import { keyString, type SyncedResource } from '../fhir/types';
import { attemptsOf, createHttpClient, type TokenSource } from '../http/client';
import { safeDetail, UpstreamError } from '../http/errors';
import { backoffMs, isRetryableStatus } from '../http/retry-policy';
import { DEPENDENCIES } from '../telemetry/names';
import type { Telemetry } from '../telemetry/telemetry';
import { AdaptiveLimiter } from './adaptive-limiter';
import { planBatches } from './batching';
import { batchResponseSchema, searchsetSchema, storedResourceSchema } from './schemas';

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
}

const FHIR_JSON = 'application/fhir+json';

/**
 * Writes to the AHDS FHIR service: PUT upserts one at a time or in batch bundles of at most 500
 * processed in parallel, resubmitting exactly the entries answered 429/408/5xx. A 200 whose
 * lastModified predates the request is "unchanged": AHDS keeps the version when only meta differs.
 */
/** The headers of a batch bundle: entries processed in parallel, answers without bodies. */
export const BATCH_HEADERS = { 'Content-Type': FHIR_JSON, 'x-bundle-processing-logic': 'parallel', Prefer: 'return=minimal' } as const;

/** A batch bundle of upserts (PUT Type/id), serialised canonically: what a bundle's body is. */
export function batchBody(resources: readonly SyncedResource[]): string {
  const entry = resources.map((resource) => ({ resource, request: { method: 'PUT', url: `${resource.resourceType}/${resource.id}` } }));
  return canonicalJson({ resourceType: 'Bundle', type: 'batch', entry });
}

export class AhdsWriter {
  readonly http: AxiosInstance;
  readonly limiter: AdaptiveLimiter;
  private readonly retry: RetrySettings;

  constructor(
    private readonly settings: Config['ahds'],
    httpSettings: Config['http'],
    auth: TokenSource,
    telemetry: Telemetry,
    private readonly random: () => number = Math.random,
  ) {
    this.retry = httpSettings.retry;
    this.limiter = new AdaptiveLimiter(settings.initialConcurrency, settings.maxConcurrency);
    this.http = createHttpClient({
      side: 'ahds',
      baseURL: settings.fhirUrl,
      timeoutMs: httpSettings.timeoutMs,
      retry: httpSettings.retry,
      telemetry,
      dependencyName: DEPENDENCIES.ahds,
      auth,
      headers: { Accept: FHIR_JSON },
      onRetry: (status) => {
        if (status === 429) this.limiter.onThrottle();
      },
    });
  }

  /** One PUT upsert. Failures come back as a failed WriteResult, never thrown, except outages. */
  async put(resource: SyncedResource): Promise<WriteResult> {
    const { resourceType, id } = resource as { resourceType: string; id: string };
    const sentAt = Date.now();
    try {
      const response = await this.http.put(`/${resourceType}/${encodeURIComponent(id)}`, canonicalJson(resource), {
        headers: { 'Content-Type': FHIR_JSON },
      });
      const stored = storedResourceSchema.safeParse(response.data);
      const lastModified = stored.success ? stored.data.meta?.lastUpdated : undefined;
      const versionId = stored.success ? stored.data.meta?.versionId : versionFromEtag(response.headers.etag);
      return { resourceType, id, outcome: classify(response.status, lastModified ?? response.headers['last-modified'], sentAt), status: response.status, attempts: attemptsOf(response.config), versionId };
    } catch (error) {
      if (error instanceof UpstreamError && !error.isOutage && error.statusCode !== 401 && error.statusCode !== 403) {
        return { resourceType, id, outcome: 'failed', status: error.statusCode, reason: error.message, attempts: error.attempts };
      }
      throw error;
    }
  }

  /**
   * Writes any number of resources: planned into bundles, sent through the adaptive limiter.
   * Results come back in input order.
   */
  async writeAll(resources: readonly SyncedResource[]): Promise<WriteResult[]> {
    const batches = planBatches(resources as Array<SyncedResource & { id: string }>, this.settings.batchSize);
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
      written[i] = after.size === 0 ? this.writeBatch(batch) : Promise.all([...after].map((j) => written[j])).then(() => this.writeBatch(batch));
    });
    const results = await Promise.all(written);
    return results.flat();
  }

  /** One bundle (at most 500 entries, no duplicates), then resubmissions of the transient failures. */
  async writeBatch(resources: readonly SyncedResource[]): Promise<WriteResult[]> {
    const results = new Map<number, WriteResult>();
    let pending = resources.map((resource, index) => ({ resource, index }));
    for (let attempt = 1; pending.length > 0; attempt++) {
      if (attempt > 1) await sleep(backoffMs(attempt - 1, this.retry, this.random));
      // The limiter's epoch when this bundle went out: a 429 to it says nothing new if the limit
      // was lowered since (the same congestion already answered).
      let epoch = this.limiter.epoch;
      const answered = await this.limiter.run(() => {
        epoch = this.limiter.epoch;
        return this.postBatch(pending.map((p) => p.resource));
      });
      const again: typeof pending = [];
      let throttled = false;
      answered.forEach((result, i) => {
        const item = pending[i]!;
        const status = result.status ?? 0;
        const resubmit = result.outcome === 'failed' && isRetryableStatus(status) && attempt < this.retry.maxAttempts;
        if (status === 429) throttled = true;
        if (resubmit) again.push(item);
        else results.set(item.index, { ...result, attempts: attempt });
      });
      if (throttled) this.limiter.onThrottle(epoch);
      else this.limiter.onSuccess();
      pending = again;
    }
    return resources.map((_, i) => results.get(i)!);
  }

  private async postBatch(resources: readonly SyncedResource[]): Promise<WriteResult[]> {
    const sentAt = Date.now();
    let response;
    try {
      response = await this.http.post('/', batchBody(resources), { headers: BATCH_HEADERS });
    } catch (error) {
      if (error instanceof UpstreamError && error.statusCode === 400) {
        // The bundle as a whole was refused; every entry shares the reason.
        return resources.map((r) => ({ resourceType: r.resourceType, id: r.id!, outcome: 'failed', status: 400, reason: error.message, attempts: error.attempts }));
      }
      throw error;
    }
    const parsed = batchResponseSchema.safeParse(response.data);
    if (!parsed.success || parsed.data.entry.length !== resources.length) {
      throw new UpstreamError('ahds', 'InvalidResponse', 'AHDS answered a batch with a bundle that does not match the request.', response.status);
    }
    return parsed.data.entry.map((entry, i) => {
      const r = resources[i]!;
      const status = Number.parseInt(entry.response.status, 10);
      const base = { resourceType: r.resourceType, id: r.id!, status, attempts: 1, versionId: versionFromEtag(entry.response.etag) };
      if (status >= 200 && status < 300) return { ...base, outcome: classify(status, entry.response.lastModified, sentAt) };
      const detail = safeDetail(entry.response.outcome);
      return { ...base, outcome: 'failed' as const, reason: `AHDS FHIR service answered ${status}${detail ? ` (${detail})` : ''}.` };
    });
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

  /** Pages through a search by its next links (AHDS pages with continuation tokens only). */
  async *search(resourceType: string, params: Record<string, string>): AsyncGenerator<Array<Record<string, unknown>>> {
    let url: string | undefined = `/${resourceType}?${new URLSearchParams(params).toString()}`;
    while (url) {
      const response = await this.http.get(url);
      const parsed = searchsetSchema.safeParse(response.data);
      if (!parsed.success) throw new UpstreamError('ahds', 'InvalidResponse', `AHDS answered a ${resourceType} search with something that is not a Bundle.`, response.status);
      yield (parsed.data.entry ?? []).flatMap((e) => (e.resource ? [e.resource as Record<string, unknown>] : []));
      url = parsed.data.link?.find((l) => l.relation === 'next')?.url;
    }
  }

  async delete(resourceType: string, id: string): Promise<void> {
    await this.http.delete(`/${resourceType}/${encodeURIComponent(id)}`);
  }
}

/**
 * 201 created; 200 is unchanged when the stored version predates this request, else updated.
 * The comparison is made at the precision the server gave: Last-Modified and some batch entries
 * carry whole seconds, and an update in the same second as the request must count as updated.
 */
export function classify(status: number, lastModified: string | undefined, sentAtMs: number): WriteOutcome {
  if (status === 201) return 'created';
  const modified = lastModified ? Date.parse(lastModified) : Number.NaN;
  if (Number.isNaN(modified)) return 'updated';
  const wholeSeconds = !/\d{2}:\d{2}:\d{2}\.\d/.test(lastModified!);
  const sent = wholeSeconds ? Math.floor(sentAtMs / 1000) * 1000 : sentAtMs;
  return modified < sent ? 'unchanged' : 'updated';
}

function versionFromEtag(etag: unknown): string | undefined {
  const m = typeof etag === 'string' ? /W\/"([^"]+)"/.exec(etag) : null;
  return m?.[1];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
