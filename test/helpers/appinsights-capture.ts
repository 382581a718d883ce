import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { gunzipSync, inflateSync } from 'node:zlib';
import { localTls } from '../../stack/tls';

/** One Application Insights envelope as the exporter sends it (Breeze schema). */
export interface Envelope {
  name: string; // Microsoft.ApplicationInsights.Event | .Metric | .RemoteDependency | ...
  time: string;
  iKey: string;
  tags: Record<string, string>;
  data: { baseType: string; baseData: any };
}

export interface CapturedRequest {
  method: string;
  path: string;
  /** Decompressed body as text (gzip and deflate are undone). */
  body: string;
}

export interface IngestionCapture {
  /** Points the SDK at this server: InstrumentationKey, IngestionEndpoint and LiveEndpoint. */
  connectionString: string;
  instrumentationKey: string;
  /** Every envelope received so far, in arrival order. */
  envelopes(): Envelope[];
  /** Every request received so far (track, live metrics, anything else), bodies decompressed. */
  requests(): CapturedRequest[];
  /** All request bodies joined: the haystack for "this secret must not appear anywhere" checks. */
  rawText(): string;
  /**
   * Resolves with all envelopes received once pred(envelopes) is true; rejects after timeoutMs
   * (the message lists what did arrive).
   */
  waitFor(pred: (envelopes: Envelope[]) => boolean, timeoutMs?: number): Promise<Envelope[]>;
  /** Forgets everything captured so far. */
  reset(): void;
  close(): Promise<void>;
}

/**
 * A local Application Insights ingestion endpoint over HTTPS (the exporter insists on https; the
 * certificate comes from scripts/with-local-ca.js). Accepts POST /v2.1/track (and any other path,
 * recorded in requests()) and answers as Breeze does: every item accepted.
 */
export async function startIngestionCapture(): Promise<IngestionCapture> {
  const { key, cert } = localTls();
  const envelopes: Envelope[] = [];
  const requests: CapturedRequest[] = [];
  const waiters = new Set<() => void>();

  const server = https.createServer({ key, cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let buf: Buffer = Buffer.concat(chunks);
      try {
        const encoding = String(req.headers['content-encoding'] ?? '').toLowerCase();
        if (encoding === 'gzip') buf = gunzipSync(buf);
        else if (encoding === 'deflate') buf = inflateSync(buf);
      } catch {
        // keep the raw bytes
      }
      const body = buf.toString('utf8');
      const path = (req.url ?? '/').split('?')[0];
      requests.push({ method: req.method ?? 'GET', path, body });
      let received = 0;
      if (req.method === 'POST' && /\/track$/.test(path)) {
        for (const item of parseEnvelopes(body)) {
          envelopes.push(item);
          received++;
        }
      }
      for (const wake of [...waiters]) wake();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ itemsReceived: received, itemsAccepted: received, errors: [] }));
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const instrumentationKey = randomUUID();
  const base = `https://127.0.0.1:${port}/`;

  return {
    connectionString: `InstrumentationKey=${instrumentationKey};IngestionEndpoint=${base};LiveEndpoint=${base}`,
    instrumentationKey,
    envelopes: () => [...envelopes],
    requests: () => [...requests],
    rawText: () => requests.map((r) => r.body).join('\n'),
    reset() {
      envelopes.length = 0;
      requests.length = 0;
    },
    waitFor(pred, timeoutMs = 10000) {
      return new Promise<Envelope[]>((resolve, reject) => {
        const check = () => {
          if (!pred([...envelopes])) return false;
          cleanup();
          resolve([...envelopes]);
          return true;
        };
        const timer = setTimeout(() => {
          cleanup();
          const seen = envelopes.map(
            (e) => `${e.name}:${e.data?.baseData?.name ?? e.data?.baseData?.metrics?.map((m: any) => m.name).join(',')}`,
          );
          reject(new Error(`waitFor: condition not met within ${timeoutMs} ms; received ${envelopes.length} envelopes: ${seen.join(' ')}`));
        }, timeoutMs);
        const wake = () => {
          check();
        };
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(wake);
        };
        waiters.add(wake);
        check();
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The exporter posts a JSON array; older senders post newline-delimited JSON. */
function parseEnvelopes(body: string): Envelope[] {
  const text = body.trim();
  if (!text) return [];
  try {
    const parsed = JSON.parse(text);
    return Array.isArray(parsed) ? parsed : [parsed];
  } catch {
    const out: Envelope[] = [];
    for (const line of text.split('\n')) {
      try {
        if (line.trim()) out.push(JSON.parse(line));
      } catch {
        // not an envelope
      }
    }
    return out;
  }
}

/** Convenience selectors over captured envelopes. */
export const select = {
  events: (envs: Envelope[], name?: string) =>
    envs.filter((e) => e.data?.baseType === 'EventData' && (name === undefined || e.data.baseData.name === name)),
  /** Flattens metric envelopes into one row per metric point with its dimensions. */
  metrics: (envs: Envelope[], name?: string) =>
    envs
      .filter((e) => e.data?.baseType === 'MetricData')
      .flatMap((e) =>
        (e.data.baseData.metrics as Array<{ name: string; value: number; count?: number; min?: number; max?: number }>).map((m) => ({
          ...m,
          properties: (e.data.baseData.properties ?? {}) as Record<string, string>,
          tags: e.tags,
        })),
      )
      .filter((m) => name === undefined || m.name === name),
  dependencies: (envs: Envelope[]) => envs.filter((e) => e.data?.baseType === 'RemoteDependencyData'),
};
