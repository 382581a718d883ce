/**
 * The batching rules of the AHDS writer, against the AHDS stand-in through the real AhdsWriter and
 * BatchSink (as src/connector.ts builds them): bundle size, no duplicate resource in a bundle, and
 * which entries are resubmitted. Every bundle sent and every answer received is recorded by an
 * axios interceptor on the writer's own client. No timing assertions.
 */
import type { AxiosResponse, InternalAxiosRequestConfig } from 'axios';
import { loadConfig } from '../../src/config/load';
import { createConnector } from '../../src/connector';
import type { SyncedResource } from '../../src/fhir/types';
import { BatchSink } from '../../src/sync/batch-sink';
import { startStack, type Stack } from '../../stack';
import type { AhdsStandIn } from '../../stack/ahds';
import { seededRandom } from '../../stack/faults';

interface Sent {
  /** `Type/id` of every entry, in order. */
  keys: string[];
  /** Entry statuses of the answer, when it was a batch-response. */
  statuses?: string[];
}

let stack: Stack;
let seq = 0;

beforeAll(async () => {
  stack = await startStack({ dataDir: null, azurite: false });
});
afterAll(() => stack?.close());
beforeEach(() => {
  stack.ahds.faults.configure({});
});

/** A writer for `ahds` (default: the stack's) built as the connector builds it, with every bundle recorded. */
async function recordedWriter(
  settings: Record<string, string> = {},
  ahds: AhdsStandIn = stack.ahds,
  /** Sees (and may change) each bundle answer before it is recorded and before the writer reads it. */
  onBundleAnswer: (index: number, entries: Array<{ response: { status: string } }>) => void = () => undefined,
) {
  const connector = await createConnector(
    loadConfig({
      ...stack.env,
      AHDS_FHIR_URL: ahds.fhirUrl,
      RETRY_BASE_DELAY_MS: '1',
      RETRY_MAX_DELAY_MS: '20',
      AHDS_SERVER_TIME_LIMIT_MS: '300',
      AHDS_APP_MAX_BUNDLES: '0',
      ...settings,
    }),
  );
  const writer = connector.writer;
  const sent: Sent[] = [];
  let inFlight = 0;
  let mostInFlight = 0;
  const onSend = (config: InternalAxiosRequestConfig & { sentIndex?: number }) => {
    if (config.method === 'post' && typeof config.data === 'string') {
      const bundle = JSON.parse(config.data) as { entry: Array<{ request: { url: string } }> };
      config.sentIndex = sent.push({ keys: bundle.entry.map((e) => e.request.url) }) - 1;
      inFlight++;
      mostInFlight = Math.max(mostInFlight, inFlight);
    }
    return config;
  };
  const onAnswer = (response: AxiosResponse) => {
    const index = (response.config as { sentIndex?: number }).sentIndex;
    if (index !== undefined) {
      inFlight--;
      const entries = (response.data as { entry?: Array<{ response: { status: string } }> }).entry;
      if (entries) onBundleAnswer(index, entries);
      sent[index]!.statuses = entries?.map((e) => e.response.status);
    }
    return response;
  };
  writer.http.interceptors.request.use(onSend);
  writer.http.interceptors.response.use(onAnswer, (error: unknown) => {
    if ((error as { config?: { sentIndex?: number } }).config?.sentIndex !== undefined) inFlight--;
    return Promise.reject(error);
  });
  return { writer, sent, mostInFlight: () => mostInFlight };
}

function observation(id: string, value = 1): SyncedResource {
  return {
    resourceType: 'Observation',
    id,
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
    subject: { reference: `Patient/p-${id}` },
    valueQuantity: { value, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
  } as SyncedResource;
}

/** Fresh ids per test: the stand-in keeps what earlier tests wrote. */
function observations(n: number): SyncedResource[] {
  const run = ++seq;
  return Array.from({ length: n }, (_, i) => observation(`bw-${run}-${i}`, i));
}

const key = (r: SyncedResource) => `${r.resourceType}/${r.id}`;

const RATE = 0.3;

/**
 * A seed for which the stand-in's batch throttle first trips at an entry in [from, to) of an
 * n-entry bundle (it draws once per request, then once per entry and again when that draw hits).
 */
function seedThrottlingAt(from: number, to: number, n: number): number {
  for (let seed = 1; seed < 10_000; seed++) {
    const random = seededRandom(seed);
    random();
    let at = -1;
    for (let i = 0; i < n && at < 0; i++) if (random() < RATE && random() < RATE) at = i;
    if (at >= from && at < to) return seed;
  }
  throw new Error('no seed found');
}

describe('batch writes to AHDS', () => {
  test('a bundle never exceeds the configured size', async () => {
    const { writer, sent } = await recordedWriter({ AHDS_BATCH_SIZE: '7' });
    const viaWriteAll = observations(23);
    const results = await writer.writeAll(viaWriteAll);
    expect(results.map((r) => r.outcome)).toEqual(viaWriteAll.map(() => 'created'));

    const viaSink = observations(30);
    const sink = new BatchSink(writer, 7, () => undefined);
    for (const r of viaSink) await sink.add(r);
    await sink.flush();

    expect(sent.length).toBeGreaterThanOrEqual(Math.ceil(23 / 7) + Math.ceil(30 / 7));
    for (const bundle of sent) expect(bundle.keys.length).toBeLessThanOrEqual(7);
    expect(sent.flatMap((b) => b.keys).sort()).toEqual([...viaWriteAll, ...viaSink].map(key).sort());
    for (const r of [...viaWriteAll, ...viaSink]) expect(await stack.ahds.read('Observation', r.id!)).toBeDefined();
  });

  test('no two entries for one resource share a bundle', async () => {
    const { writer, sent } = await recordedWriter({ AHDS_BATCH_SIZE: '10' });
    const [a, b, c] = observations(3);
    // Three versions of a, two of b, interleaved: each version must go to a later bundle.
    const stream = [observation(a!.id!, 1), b!, observation(a!.id!, 2), c!, observation(b!.id!, 5), observation(a!.id!, 3)];
    const results = await writer.writeAll(stream);
    expect(results.every((r) => r.outcome !== 'failed')).toBe(true);

    const sink = new BatchSink(writer, 10, () => undefined);
    for (const r of [observation(c!.id!, 7), observation(c!.id!, 8), observation(c!.id!, 9)]) await sink.add(r);
    await sink.flush();

    for (const bundle of sent) expect(new Set(bundle.keys).size).toBe(bundle.keys.length);
    // The stand-in answers a bundle with duplicates 400 as a whole: nothing of that kind happened,
    // and the last version of each resource is the one stored.
    expect(sent.every((s) => s.statuses !== undefined)).toBe(true);
    expect(((await stack.ahds.read('Observation', a!.id!)) as any).valueQuantity.value).toBe(3);
    expect(((await stack.ahds.read('Observation', b!.id!)) as any).valueQuantity.value).toBe(5);
    expect(((await stack.ahds.read('Observation', c!.id!)) as any).valueQuantity.value).toBe(9);
  });

  test('only the entries answered 429 are resubmitted', async () => {
    // One throttled answer, then a healthy service: the resubmission is exactly what was throttled.
    const { writer, sent } = await recordedWriter({ AHDS_BATCH_SIZE: '40' }, stack.ahds, (index) => {
      if (index === 0) stack.ahds.faults.configure({});
    });
    const resources = observations(40);
    // The stand-in's throttle (parallel batch: each throttled entry retried once by the server) 429s some entries.
    stack.ahds.faults.configure({ seed: seedThrottlingAt(10, 30, 40), batchThrottleRate: RATE, retryAfterMs: 5 });
    stack.ahds.resetStats();
    const results = await writer.writeBatch(resources);
    expect(results.map((r) => r.outcome)).toEqual(resources.map(() => 'created'));
    expect(sent).toHaveLength(2);

    const first = sent[0]!;
    const throttled = first.keys.filter((_, i) => first.statuses![i] === '429');
    const accepted = first.keys.filter((_, i) => first.statuses![i] === '201');
    expect(throttled.length).toBeGreaterThan(0);
    expect(accepted.length).toBeGreaterThan(0);
    expect(throttled.length + accepted.length).toBe(40);
    // Each resubmission holds exactly what the previous answer throttled, in order.
    for (let i = 1; i < sent.length; i++) {
      const previous = sent[i - 1]!;
      expect(sent[i]!.keys).toEqual(previous.keys.filter((_, j) => previous.statuses![j] === '429'));
    }
    const last = sent[sent.length - 1]!;
    expect(last.keys.length).toBeGreaterThan(0);
    expect(last.statuses).toEqual(last.keys.map(() => '201'));
    // Counted by the stand-in: every entry answered 429 was sent once more, nothing else was.
    const stats = stack.ahds.stats();
    const answered429 = stats.byEntryStatus['429'] ?? 0;
    expect(answered429).toBe(sent.reduce((n, s) => n + s.statuses!.filter((x) => x === '429').length, 0));
    expect(stats.entries).toBe(40 + answered429);
    expect(stats.byEntryStatus['201']).toBe(40);
    expect(results.filter((r) => throttled.includes(`Observation/${r.id}`)).every((r) => r.attempts >= 2)).toBe(true);
    expect(results.filter((r) => accepted.includes(`Observation/${r.id}`)).every((r) => r.attempts === 1)).toBe(true);
  });

  test('408 and 5xx entries are resubmitted, 400 entries are not', async () => {
    // The first bundle's third entry comes back 503 and its fifth 408, as if the service had failed them.
    const { writer, sent } = await recordedWriter({ AHDS_BATCH_SIZE: '10' }, stack.ahds, (index, entries) => {
      if (index === 0) {
        entries[2]!.response.status = '503';
        entries[4]!.response.status = '408';
      }
    });
    const good = observations(9);
    // Not valid FHIR: Observation.status is required (a top-level element). The stand-in answers this entry 400.
    const invalid = { ...observation(`bw-invalid-${seq}`), status: undefined } as unknown as SyncedResource;
    const batch = [good[0]!, invalid, ...good.slice(1)];
    const results = await writer.writeBatch(batch);

    const byId = new Map(results.map((r) => [r.id, r]));
    expect(byId.get(invalid.id!)).toMatchObject({ outcome: 'failed', status: 400, attempts: 1 });
    // (The entries rewritten to 503/408 were in fact stored: their resubmission answers unchanged.)
    for (const r of good) expect(['created', 'unchanged']).toContain(byId.get(r.id!)?.outcome);
    for (const r of good) expect(await stack.ahds.read('Observation', r.id!)).toBeDefined();

    // The 400 entry was sent once; the 408 and the 503 entries were sent again, nothing else.
    const sentCount = (k: string) => sent.filter((s) => s.keys.includes(k)).length;
    expect(sentCount(key(invalid))).toBe(1);
    const first = sent[0]!;
    expect(first.statuses![1]).toBe('400');
    expect(first.statuses![2]).toBe('503');
    expect(first.statuses![4]).toBe('408');
    const retried = first.keys.filter((_, i) => first.statuses![i] === '408' || first.statuses![i] === '503');
    expect(retried).toHaveLength(2);
    for (const [i, k] of first.keys.entries()) if (first.statuses![i] === '201') expect(sentCount(k)).toBe(1);
    expect(sent[1]!.keys).toEqual(retried);
  });

  test('the adaptive limit backs off on 429 and never exceeds the ceiling', async () => {
    const { writer, sent, mostInFlight } = await recordedWriter({
      AHDS_INITIAL_CONCURRENCY: '1',
      AHDS_MAX_CONCURRENCY: '4',
      AHDS_BATCH_SIZE: '5',
      RETRY_MAX_ATTEMPTS: '20',
    });
    const limiter = writer.limiter;
    const changes: Array<{ before: number; after: number }> = [];
    const limits: number[] = [];
    const onThrottle = limiter.onThrottle.bind(limiter);
    limiter.onThrottle = (epoch?: number) => {
      const before = limiter.limit;
      onThrottle(epoch);
      changes.push({ before, after: limiter.limit });
    };
    const onSuccess = limiter.onSuccess.bind(limiter);
    limiter.onSuccess = () => {
      onSuccess();
      limits.push(limiter.limit);
    };

    // Clean first: the limit ramps up from 1 to the ceiling and stays there.
    const sink = new BatchSink(writer, 5, () => undefined);
    for (const r of observations(150)) await sink.add(r);
    await sink.flush();
    expect(limits[0]).toBeLessThanOrEqual(2);
    expect(Math.max(...limits)).toBe(4);
    expect(changes).toHaveLength(0);

    // Then throttled: the limit is cut, never raised by a throttle, and still never above the ceiling.
    stack.ahds.faults.configure({ seed: 5, batchThrottleRate: 0.5, retryAfterMs: 5 });
    const throttledSink = new BatchSink(writer, 5, () => undefined);
    for (const r of observations(150)) await throttledSink.add(r);
    await throttledSink.flush();
    expect(changes.length).toBeGreaterThan(0);
    expect(changes.some((c) => c.after < c.before)).toBe(true);
    expect(changes.every((c) => c.after <= Math.max(1, Math.floor(c.before / 2)) || c.after === c.before)).toBe(true);
    expect(limiter.peak).toBeLessThanOrEqual(4);
    expect(mostInFlight()).toBeLessThanOrEqual(4);
    expect(sent.every((s) => s.keys.length <= 5)).toBe(true);
  });

  test('the writer is the one the connector builds', async () => {
    const { writer } = await recordedWriter();
    expect(writer.limiter.limit).toBe(loadConfig(stack.env).ahds.initialConcurrency);
  });
});
