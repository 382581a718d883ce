import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { AxiosInstance } from 'axios';
import { UpstreamError } from '../http/errors';
import { serverRetryAfterMs } from '../http/retry-policy';
import type { OpenEmrReader } from './reader';
import { toOpenEmrInstant } from './reader';
import { bulkStatusSchema, deletedBundleSchema, phpDateTimeToIso, singleResourceSchema } from './schemas';

/**
 * Bulk FHIR $export against OpenEMR, losing nothing:
 * - OpenEMR runs the whole export inside the kick-off request (up to its 2-minute budget), so the
 *   kick-off has its own long timeout and is never retried: a retry would run another full export.
 * - `type=` (which OpenEMR honours) and `_type` (the standard, which it ignores: openemr#8668).
 * - Polls honour Retry-After in both forms (seconds, HTTP-date), 429 included.
 * - OpenEMR's 2-minute budget cuts an export part-way: the types that finished are in `output[]`,
 *   whole; the others are missing from it (error[] holds OperationOutcomes that name no type). The
 *   manifest lists the asked types without a file as `unfinished`, and the caller searches those.
 *   A file that fails or expired leaves its type to search too.
 * - `deleted[]` is read and handed on.
 * - Files are followed only under the configured FHIR base. Behind TLS offload OpenEMR names them
 *   with its site_addr_oath origin (e.g. http://internal-host/apis/default/fhir/Binary/7): a URL
 *   whose path lies under the configured FHIR base path is mapped onto the configured base (same
 *   server, reached the way the connector is configured to reach it); any other URL gets no token
 *   and is fetched only when requiresAccessToken is false and it is https (or loopback).
 * - The job is DELETEd when done or abandoned.
 */

/** A resource type the connector asks the export for (a row of resource-types.ts with read.connectorExports). */
export type ExportedType = string;

export interface ExportFile {
  type: string;
  /** Where to fetch it: a path on the FHIR base client, or an absolute foreign URL. */
  target: { onBase: true; path: string } | { onBase: false; url: string };
}

export interface ExportManifest {
  statusUrl: string;
  transactionTime?: string;
  outputs: ExportFile[];
  deleted: ExportFile[];
  requiresAccessToken: boolean;
  /** Asked types with no file in output[] (cut off by OpenEMR's time budget): read by search instead. */
  unfinished: ExportedType[];
  /** How many entries error[] held (OpenEMR: the budget's OperationOutcomes). */
  errors: number;
}

/** $export is not offered (missing scope, route, server support) or did not give a complete answer. */
export class ExportUnavailableError extends Error {
  constructor(
    message: string,
    readonly statusCode?: number,
  ) {
    super(message);
    this.name = 'ExportUnavailableError';
  }
}

const FHIR_JSON = 'application/fhir+json';

export interface ExportOptions {
  since?: string;
  types: readonly ExportedType[];
  /** Longest wait for a status answer (default 30 min). */
  maxWaitMs?: number;
  /** Poll interval when the server names none (default 1 s). */
  pollMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

export class BulkExportClient {
  private readonly kickoffHttp: AxiosInstance;
  private readonly plainHttp: AxiosInstance;

  constructor(private readonly reader: OpenEmrReader) {
    this.kickoffHttp = reader.client({ timeoutMs: reader.settings.exportKickoffTimeoutMs, noRetry: true });
    this.plainHttp = reader.client({ noAuth: true, timeoutMs: reader.settings.exportDownloadTimeoutMs });
  }

  /**
   * Kick-off and status polls until complete. Throws ExportUnavailableError when the export is
   * refused or its manifest unusable (the job is DELETEd first), UpstreamError on an outage of the kick-off.
   */
  async run(options: ExportOptions): Promise<ExportManifest> {
    const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    const types = options.types.join(',');
    let kickOff;
    try {
      kickOff = await this.kickoffHttp.get('/$export', {
        params: { _type: types, type: types, ...(options.since ? { _since: toOpenEmrInstant(options.since) } : {}) },
        headers: { Accept: FHIR_JSON, Prefer: 'respond-async' },
      });
    } catch (error) {
      if (error instanceof UpstreamError) {
        throw new ExportUnavailableError(
          `OpenEMR did not complete the bulk export kick-off (${error.statusCode ?? error.code}).`,
          error.statusCode,
        );
      }
      throw error;
    }
    const location = header(kickOff.headers, 'content-location');
    if (kickOff.status !== 202 || !location)
      throw new ExportUnavailableError(`OpenEMR did not accept a bulk export (${kickOff.status}).`, kickOff.status);
    const status = this.onBase(location);
    if (!status.onBase)
      throw new ExportUnavailableError('OpenEMR named an export status URL outside its FHIR base; the token is not sent there.');
    const statusUrl = status.path;
    try {
      const deadline = Date.now() + (options.maxWaitMs ?? 30 * 60_000);
      for (;;) {
        const answer = await this.reader.http.get(statusUrl, {
          headers: { Accept: FHIR_JSON },
          validateStatus: (s) => s === 200 || s === 202 || s === 429,
        });
        if (answer.status === 200) return this.manifest(statusUrl, answer.data, options.types);
        if (Date.now() > deadline) throw new ExportUnavailableError('OpenEMR bulk export did not finish in time.', answer.status);
        const asked = serverRetryAfterMs(answer.headers as Record<string, unknown>);
        await sleep(Math.min(asked ?? options.pollMs ?? 1000, 120_000));
      }
    } catch (error) {
      await this.end(statusUrl);
      if (error instanceof UpstreamError)
        throw new ExportUnavailableError(`OpenEMR bulk export status failed (${error.statusCode ?? error.code}).`, error.statusCode);
      throw error;
    }
  }

  private manifest(statusUrl: string, body: unknown, types: readonly ExportedType[]): ExportManifest {
    const parsed = bulkStatusSchema.safeParse(body);
    if (!parsed.success)
      throw new ExportUnavailableError('OpenEMR answered the export status with something that is not a bulk data manifest.');
    const status = parsed.data;
    // OpenEMR lists in output[] only the types that finished inside its 2-minute budget
    // (FhirOperationExportRestController.php:408-426): each of those files is whole. The type running
    // when the budget ended, and every later one, appear only as OperationOutcomes in error[] (which
    // name no type): an asked type missing from output[] is unfinished, whatever error[] says.
    const unfinished = types.filter((t) => !status.output.some((o) => o.type === t));
    const requiresAccessToken = status.requiresAccessToken ?? true;
    const file = (o: { type?: string; url: string }): ExportFile => {
      const target = this.onBase(o.url);
      if (!target.onBase && requiresAccessToken)
        throw new ExportUnavailableError(
          'OpenEMR named an export file outside its FHIR base that needs the access token; the token is not sent there.',
        );
      if (!target.onBase && !secureOrLoopback(target.url))
        throw new ExportUnavailableError('OpenEMR named an export file on plain http outside its FHIR base; it is not fetched.');
      return { type: o.type ?? '', target };
    };
    const outputs = status.output.filter((o) => (types as readonly string[]).includes(o.type)).map(file);
    const deleted = (status.deleted ?? []).map(file);
    return {
      statusUrl,
      transactionTime: phpDateTimeToIso(status.transactionTime),
      outputs,
      deleted,
      requiresAccessToken,
      unfinished,
      errors: status.error.length,
    };
  }

  /**
   * A URL from OpenEMR as a path on the configured FHIR base when its path lies under the base
   * path (whatever origin site_addr_oath gave it), else a foreign absolute URL.
   */
  onBase(url: string): { onBase: true; path: string } | { onBase: false; url: string } {
    const base = new URL(this.reader.fhirBaseUrl);
    let target: URL;
    try {
      target = new URL(url, `${base.href}/`);
    } catch {
      return { onBase: false, url };
    }
    const basePath = base.pathname.replace(/\/+$/, '');
    if (target.pathname === basePath || target.pathname.startsWith(`${basePath}/`)) {
      return { onBase: true, path: `${target.pathname.slice(basePath.length) || '/'}${target.search}` };
    }
    return { onBase: false, url: target.href };
  }

  /**
   * Streams one file's resources line by line. The download times out on total time
   * (exportDownloadTimeoutMs), never on a consumer that pauses while the target throttles.
   */
  async *resources(file: ExportFile): AsyncGenerator<Record<string, unknown>> {
    const signal = AbortSignal.timeout(this.reader.settings.exportDownloadTimeoutMs);
    const config = { responseType: 'stream' as const, timeout: 0, signal, headers: { Accept: 'application/fhir+ndjson' } };
    const response = file.target.onBase
      ? await this.reader.http.get(file.target.path, config)
      : await this.plainHttp.get(file.target.url, config);
    const lines = createInterface({ input: response.data as Readable, crlfDelay: Infinity });
    try {
      for await (const line of lines) {
        const text = line.trim();
        if (!text) continue;
        let resource: unknown;
        try {
          resource = JSON.parse(text);
        } catch {
          throw new UpstreamError(
            'openemr',
            'InvalidResponse',
            'OpenEMR bulk export output holds a line that is not JSON.',
            response.status,
          );
        }
        // A line that is not a resource makes the file unusable (and the export incomplete).
        const parsed = singleResourceSchema.safeParse(resource);
        if (!parsed.success)
          throw new UpstreamError(
            'openemr',
            'InvalidResponse',
            'OpenEMR bulk export output holds a line that is not a FHIR resource.',
            response.status,
          );
        yield parsed.data as Record<string, unknown>;
      }
    } catch (error) {
      if (error instanceof UpstreamError) throw error;
      throw new UpstreamError(
        'openemr',
        signal.aborted ? 'Timeout' : 'Network',
        `OpenEMR bulk export download broke off (${signal.aborted ? 'took longer than OPENEMR_EXPORT_DOWNLOAD_TIMEOUT_MS' : ((error as Error)?.name ?? 'Error')}).`,
      );
    } finally {
      lines.close();
      (response.data as Readable).destroy?.();
    }
  }

  /** The deleted[] files as Type/id pairs (each line a Bundle of DELETE requests, per the Bulk Data IG). */
  async *deletions(manifest: ExportManifest): AsyncGenerator<{ type: string; id: string }> {
    for (const file of manifest.deleted) {
      for await (const line of this.resources(file)) {
        const bundle = deletedBundleSchema.safeParse(line);
        if (!bundle.success)
          throw new UpstreamError('openemr', 'InvalidResponse', 'An export deleted[] file holds a line that is not a Bundle.');
        for (const e of bundle.data.entry) {
          const m = /^([A-Z][A-Za-z]+)\/([^/?]+)$/.exec(e.request?.url ?? '');
          if (e.request?.method === 'DELETE' && m) yield { type: m[1]!, id: decodeURIComponent(m[2]!) };
        }
      }
    }
  }

  /** Tells OpenEMR the files may go (DELETE on the status URL); a failure here loses nothing. */
  async end(statusUrl: string): Promise<void> {
    await this.reader.http.delete(statusUrl, { validateStatus: () => true }).catch(() => undefined);
  }
}

function secureOrLoopback(url: string): boolean {
  const u = new URL(url);
  return u.protocol === 'https:' || (u.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]', '::1'].includes(u.hostname));
}

function header(headers: unknown, name: string): string | undefined {
  const h = headers as { get?: (n: string) => unknown } & Record<string, unknown>;
  const v = typeof h?.get === 'function' ? h.get(name) : h?.[name];
  return v === undefined || v === null ? undefined : String(v);
}
