import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { UpstreamError } from '../http/errors';
import type { OpenEmrReader } from '../openemr/reader';
import { toOpenEmrInstant } from '../openemr/reader';

/**
 * Bulk FHIR $export against OpenEMR: kick-off with `Prefer: respond-async` (202 + Content-Location),
 * status polls until 200, then one NDJSON document per type served as Binary. `_type` is ignored
 * by OpenEMR (openemr#8668), so every type comes back and the caller keeps what it carries.
 * Used where it is cheaper than searching: the first run, a --full run, a gap of days.
 */
export interface ExportJob {
  statusUrl: string;
  transactionTime?: string;
  outputs: Array<{ type: string; url: string }>;
}

/** $export is not offered (missing scope, route, or server support): the caller searches instead. */
export class ExportUnavailableError extends Error {
  constructor(readonly statusCode: number | undefined) {
    super(`OpenEMR did not accept a bulk export (${statusCode ?? 'no status'}).`);
    this.name = 'ExportUnavailableError';
  }
}

const FHIR_JSON = 'application/fhir+json';

export async function startExport(reader: OpenEmrReader, options: { since?: string; pollMs?: number; maxWaitMs?: number; sleep?: (ms: number) => Promise<void> } = {}): Promise<ExportJob> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let kickOff;
  try {
    kickOff = await reader.http.get('/$export', {
      params: { _type: 'Patient,Observation', ...(options.since ? { _since: toOpenEmrInstant(options.since) } : {}) },
      headers: { Accept: FHIR_JSON, Prefer: 'respond-async' },
    });
  } catch (error) {
    if (error instanceof UpstreamError && !error.isOutage) throw new ExportUnavailableError(error.statusCode);
    throw error;
  }
  const statusUrl = header(kickOff.headers, 'content-location');
  if (kickOff.status !== 202 || !statusUrl) throw new ExportUnavailableError(kickOff.status);
  const deadline = Date.now() + (options.maxWaitMs ?? 30 * 60_000);
  for (;;) {
    const answer = await reader.http.get(statusUrl, { headers: { Accept: FHIR_JSON } });
    if (answer.status === 200) {
      const body = answer.data as { transactionTime?: string; output?: Array<{ type?: string; url?: string }> };
      const outputs = (body.output ?? []).flatMap((o) => (typeof o.type === 'string' && typeof o.url === 'string' ? [{ type: o.type, url: o.url }] : []));
      return { statusUrl, transactionTime: body.transactionTime, outputs };
    }
    if (Date.now() > deadline) throw new UpstreamError('openemr', 'Timeout', 'OpenEMR bulk export did not finish in time.', answer.status);
    const retryAfter = Number(header(answer.headers, 'retry-after'));
    await sleep(Number.isFinite(retryAfter) && retryAfter > 0 ? Math.min(retryAfter * 1000, 60_000) : (options.pollMs ?? 1000));
  }
}

/** Streams the resources of one NDJSON output line by line (memory: one line at a time). */
export async function* exportedResources(reader: OpenEmrReader, url: string): AsyncGenerator<Record<string, unknown>> {
  const response = await reader.http.get(url, { responseType: 'stream', headers: { Accept: 'application/fhir+ndjson' } });
  const lines = createInterface({ input: response.data as Readable, crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      const text = line.trim();
      if (!text) continue;
      let resource: unknown;
      try {
        resource = JSON.parse(text);
      } catch {
        throw new UpstreamError('openemr', 'InvalidResponse', 'OpenEMR bulk export output holds a line that is not JSON.', response.status);
      }
      if (resource && typeof resource === 'object') yield resource as Record<string, unknown>;
    }
  } catch (error) {
    if (error instanceof UpstreamError) throw error;
    // The connection broke in the middle of the document: an outage, the window stays open.
    throw new UpstreamError('openemr', 'Network', `OpenEMR bulk export download broke off (${(error as Error)?.name ?? 'Error'}).`);
  } finally {
    lines.close();
    (response.data as Readable).destroy?.();
  }
}

/** Tells OpenEMR the files may go (DELETE on the status URL); failures are ignored. */
export async function endExport(reader: OpenEmrReader, job: ExportJob): Promise<void> {
  await reader.http.delete(job.statusUrl).catch(() => undefined);
}

function header(headers: unknown, name: string): string | undefined {
  const h = headers as { get?: (n: string) => unknown } & Record<string, unknown>;
  const v = typeof h?.get === 'function' ? h.get(name) : h?.[name];
  return v === undefined || v === null ? undefined : String(v);
}
