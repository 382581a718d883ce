/**
 * The writer against AHDS as microsoft/fhir-server really behaves (the AHDS stand-in, or a small fake
 * server where an exact answer is needed). Counts and shapes only; waits are recorded, not timed.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AhdsWriter, AHDS_AUDIT_HEADER, createAhdsWriter, sleep, type WriterOptions } from '../../src/ahds/writer';
import { ServerClock } from '../../src/ahds/server-clock';
import type { SyncedResource } from '../../src/fhir/types';
import { createHttpClient } from '../../src/http/client';
import { UpstreamError } from '../../src/http/errors';
import { BatchSink } from '../../src/sync/batch-sink';
import { RecordingTelemetry, type DependencyCall } from '../../src/telemetry/telemetry';
import { startAhdsStandIn, type AhdsStandIn, type AhdsStandInOptions } from '../../stack/ahds';
import { startEntraStandIn, type EntraStandIn } from '../../stack/entra';
import { patient, putEntry, tokenFor } from '../helpers/ahds-client';

jest.setTimeout(120_000);

const RETRY = { maxAttempts: 6, baseDelayMs: 5, maxDelayMs: 50, maxTotalMs: 60_000 };

/** A writer over a plain client for `baseURL` (no auth: the stand-ins here run without it). */
function writerFor(baseURL: string, options: Partial<WriterOptions> = {}, telemetry = new RecordingTelemetry()): AhdsWriter {
  const http = createHttpClient({ side: 'ahds', baseURL, timeoutMs: 10_000, retry: RETRY, telemetry, dependencyName: 'AHDS FHIR' });
  return new AhdsWriter({
    http,
    batchSize: 50,
    maxConcurrency: 8,
    initialConcurrency: 2,
    retry: RETRY,
    auditHeader: AHDS_AUDIT_HEADER,
    telemetry,
    ...options,
  });
}

async function standIn(options: AhdsStandInOptions = {}): Promise<AhdsStandIn> {
  return startAhdsStandIn({ requireAuth: false, ...options });
}

let n = 0;
const patients = (count: number, family = 'Smith'): SyncedResource[] => {
  const run = ++n;
  return Array.from({ length: count }, (_, i) => patient(`w${run}-${i}`, family) as SyncedResource);
};

/** A fake FHIR server: answers each request with `answer(body, headers, index)`, recording what came. */
type FakeAnswer = { status: number; headers?: Record<string, string>; body?: unknown };

async function fakeServer(answer: (req: { body: any; headers: http.IncomingHttpHeaders; index: number }) => FakeAnswer) {
  const received: Array<{ body: any; headers: http.IncomingHttpHeaders }> = [];
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      const body = text ? JSON.parse(text) : undefined;
      const index = received.push({ body, headers: req.headers }) - 1;
      const a = answer({ body, headers: req.headers, index });
      const out = a.body === undefined ? '' : JSON.stringify(a.body);
      res.writeHead(a.status, { 'content-type': 'application/fhir+json', 'x-request-id': `req-${index}`, ...(a.headers ?? {}) });
      res.end(out);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, received, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** A batch-response answering every entry of `body` with `status`. */
function batchAnswer(body: any, status: (i: number) => string) {
  return {
    resourceType: 'Bundle',
    type: 'batch-response',
    entry: body.entry.map((e: any, i: number) => ({
      response: { status: status(i), etag: 'W/"1"' },
      resource: status(i).startsWith('2') ? { ...e.resource, meta: { versionId: '1', lastUpdated: new Date().toISOString() } } : undefined,
    })),
  };
}

describe('the writer against AHDS as it really behaves', () => {
  // fhir-server BundleConfiguration.MaxExecutionTimeInSeconds (100 s) and BundleOrchestratorOperation.cs:
  // a bundle may run that long. A client that gives up sooner must not POST it again while it runs.
  test("no concurrent duplicate POST of a bundle when the server is slower than the client's patience", async () => {
    // Margins are wide (a 2 s first answer against a 1 s patience, a 4 s server budget) so that a
    // loaded machine cannot make the fast answers look slow: the test counts requests, not time.
    const ahds = await standIn({ faults: { perEntryLatencyMs: 2000 } });
    try {
      // Only the first POST is slow: its delay is fixed in the tick its body is read (bytesIn counts
      // it), after which the latency is taken away, so later POSTs are answered at once.
      const fast = setInterval(() => {
        if (ahds.stats().bytesIn > 0) {
          ahds.faults.configure({});
          clearInterval(fast);
        }
      }, 2);
      const waits: number[] = [];
      const writer = writerFor(ahds.fhirUrl, {
        bundleTimeoutMs: 1000,
        serverBudgetMs: 4000,
        sleep: (ms) => {
          waits.push(ms);
          return sleep(ms);
        },
      });
      const limit = writer.limiter.limit;
      const [first] = patients(1, 'First');
      const later = { ...first!, name: [{ family: 'Later', given: ['Ann'] }] } as SyncedResource;
      ahds.resetStats();
      // The later version goes through the sink right behind: it may not overtake the slow first copy.
      const results: string[] = [];
      const sink = new BatchSink(writer, 1, (r) => {
        results.push(...r.map((x) => x.outcome));
      });
      await sink.add(first!);
      await sink.add(later);
      await sink.flush();
      const stats = ahds.stats();
      // Two POSTs of the first bundle (the timed-out one, then its resubmission), one of the later:
      // never two copies of one resource in the server at once.
      expect(stats.overlappingWrites).toBe(0);
      expect(stats.requests).toBe(3);
      expect(results.every((o) => o !== 'failed')).toBe(true);
      expect(((await ahds.read('Patient', first!.id!)) as any).name[0].family).toBe('Later');
      // The timeout was congestion (the limit was lowered), and the resubmission waited out the server's time.
      expect(writer.limiter.epoch).toBe(1);
      expect(writer.limiter.limit).toBeLessThanOrEqual(limit);
      expect(waits.some((w) => w > 2000)).toBe(true);
    } finally {
      await ahds.close();
    }
  });

  // ThrottlingMiddleware.cs: whole-request 429s come in bursts; one burst is one congestion episode.
  test('one halving per 429 burst: the limit finds the capacity without collapsing', async () => {
    // A 1 s answer keeps the eight first bundles in the server together even on a loaded machine.
    const ahds = await standIn({ capacity: 2, faults: { latencyMs: 1000 } });
    try {
      const writer = writerFor(ahds.fhirUrl, { initialConcurrency: 8, maxConcurrency: 8, batchSize: 5 });
      // Per epoch the congestion report was sent in: how many reports, how many halvings they caused.
      const reports = new Map<number, { calls: number; halvings: number }>();
      const firstLimits: number[] = [];
      const onThrottle = writer.limiter.onThrottle.bind(writer.limiter);
      writer.limiter.onThrottle = (epoch?: number) => {
        const before = writer.limiter.epoch;
        onThrottle(epoch);
        const r = reports.get(epoch ?? -1) ?? { calls: 0, halvings: 0 };
        r.calls++;
        if (writer.limiter.epoch !== before) {
          r.halvings++;
          firstLimits.push(writer.limiter.limit);
        }
        reports.set(epoch ?? -1, r);
      };
      const results = await writer.writeAll(patients(40));
      expect(results.every((r) => r.outcome === 'created')).toBe(true);
      const throttled = ahds.stats().capacityThrottled;
      expect(throttled).toBeGreaterThanOrEqual(6);
      // The first burst (eight bundles sent at once, six answered 429) halves once: 8 -> 4, not 8 -> 1.
      expect(reports.get(0)!.calls).toBeGreaterThanOrEqual(6);
      expect(reports.get(0)!.halvings).toBe(1);
      expect(firstLimits[0]).toBe(4);
      // And every later episode at most once.
      for (const r of reports.values()) expect(r.halvings).toBeLessThanOrEqual(1);
      expect(writer.limiter.limit).toBeGreaterThanOrEqual(1);
    } finally {
      await ahds.close();
    }
  });

  // ThrottlingMiddleware.cs: x-ms-retry-after-ms up to 60 s; BundleHandler.cs copies an entry's wait onto the outer answer.
  test("the server's wait is honoured up to 60 s, whole-request and per entry", async () => {
    const asks = ['45000', '90000'];
    const server = await fakeServer(({ body, index }): FakeAnswer => {
      if (index < 2)
        return {
          status: 429,
          headers: { 'x-ms-retry-after-ms': asks[index]!, 'retry-after': '45' },
          body: { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'throttled' }] },
        };
      if (index === 2)
        return { status: 200, headers: { 'x-ms-retry-after-ms': '30000' }, body: batchAnswer(body, (i) => (i === 0 ? '429' : '201')) };
      return { status: 200, body: batchAnswer(body, () => '201') };
    });
    try {
      const waits: number[] = [];
      const writer = writerFor(server.url, { sleep: async (ms) => void waits.push(ms) });
      const results = await writer.writeBatch(patients(3));
      expect(results.map((r) => r.outcome)).toEqual(['created', 'created', 'created']);
      expect(waits).toEqual([45_000, 60_000, 30_000]);
      expect(server.received.map((r) => r.body.entry.length)).toEqual([3, 3, 3, 1]);
    } finally {
      await server.close();
    }
  });

  // FhirJsonInputFormatter.cs + ValidateModelStateAttribute.cs: one parse error refuses the whole bundle.
  test('a whole-bundle 400 with one bad resource dead-letters exactly that one', async () => {
    const ahds = await standIn();
    try {
      const writer = writerFor(ahds.fhirUrl);
      const batch = patients(6);
      batch[3] = { ...batch[3]!, favouriteColour: 'blue' } as unknown as SyncedResource;
      const results = await writer.writeBatch(batch);
      expect(results.map((r) => r.outcome)).toEqual(['created', 'created', 'created', 'failed', 'created', 'created']);
      expect(results[3]).toMatchObject({ status: 400, reason: expect.stringMatching(/unknown element.*X-Request-Id [0-9a-f-]{36}/) });
      expect(ahds.stats().byStatus['400']).toBeGreaterThanOrEqual(2);
      expect(await ahds.read('Patient', batch[3]!.id!)).toBeUndefined();
    } finally {
      await ahds.close();
    }
  });

  // BundleHandler.cs: no data role is a whole-bundle 403; a reader gets 403 in every entry.
  test('an all-403 bundle is an outage that fails with one sentence', async () => {
    const entra: EntraStandIn = await startEntraStandIn({
      clients: [
        { clientId: 'norole', clientSecret: 'n' },
        { clientId: 'reader', clientSecret: 'r' },
      ],
    });
    const ahds = await startAhdsStandIn({ entra, withoutDataRole: ['norole'], withoutWriterRole: ['reader'] });
    try {
      for (const clientId of ['norole', 'reader']) {
        const token = await tokenFor(ahds, { clientId, clientSecret: clientId === 'norole' ? 'n' : 'r' });
        const writer = writerFor(ahds.fhirUrl);
        writer.http.defaults.headers.common.Authorization = `Bearer ${token}`;
        const error = await writer.writeBatch(patients(3)).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(UpstreamError);
        expect((error as UpstreamError).statusCode).toBe(403);
        expect((error as UpstreamError).message).toMatch(
          /^AHDS FHIR service refused every write of a bundle \(403\): give the connector's identity the FHIR Data Writer role on the service/,
        );
      }
    } finally {
      await ahds.close();
      await entra.close();
    }
  });

  // SqlServerFhirDataStore.cs: a write racing another writer of the resource ends in 412 after the
  // server's own retries; the writer resubmits it a bounded number of times.
  test('a conflict 412 is retried', async () => {
    const ahds = await standIn({ conflictWaitMs: 30, faults: { perEntryLatencyMs: 60 } });
    try {
      const writer = writerFor(ahds.fhirUrl, {
        retry: { ...RETRY, baseDelayMs: 200, maxDelayMs: 2000 },
        random: () => 1,
        conflictRetries: 5,
      });
      const [target] = patients(1);
      // Another request writes the same Patient among 20 entries (1.2 s in the server).
      const others = patients(19);
      const blocker = fetch(`${ahds.fhirUrl}/`, {
        method: 'POST',
        headers: { 'content-type': 'application/fhir+json', 'x-bundle-processing-logic': 'parallel' },
        body: JSON.stringify({
          resourceType: 'Bundle',
          type: 'batch',
          entry: [putEntry(target as never), ...others.map((o) => putEntry(o as never))],
        }),
      });
      while (ahds.stats().bytesIn === 0) await sleep(2); // the blocker has claimed the Patient
      const [result] = await writer.writeBatch([{ ...target!, name: [{ family: 'Mine' }] } as SyncedResource]);
      await blocker;
      expect(ahds.stats().byEntryStatus['412']).toBeGreaterThanOrEqual(1);
      expect(result).toMatchObject({ outcome: 'updated' });
      expect(result!.attempts).toBeGreaterThanOrEqual(2);
      expect(((await ahds.read('Patient', target!.id!)) as any).name[0].family).toBe('Mine');
    } finally {
      await ahds.close();
    }
  });

  // BundleFactory.cs: a searchset puts an OperationOutcome entry (with an id) first.
  test("reconcile's search ignores the leading OperationOutcome; deletes go in bundles", async () => {
    const ahds = await standIn();
    try {
      const writer = writerFor(ahds.fhirUrl, { batchSize: 2 });
      const written = patients(5);
      await writer.writeAll(written);
      const found: Array<Record<string, unknown>> = [];
      for await (const page of writer.search('Patient', { _count: '5000', unknownParam: 'x' })) found.push(...page);
      expect(found.map((r) => r.resourceType)).toEqual(written.map(() => 'Patient'));
      ahds.resetStats();
      expect(
        await writer.deleteAll(
          'Patient',
          written.map((r) => r.id!),
        ),
      ).toBe(5);
      expect(ahds.stats().requests).toBe(3);
      expect(await ahds.snapshot('Patient')).toEqual([]);
    } finally {
      await ahds.close();
    }
  });

  // BundleHandler.cs (lastModified whole seconds) and MergeResourcesBeginTransaction.sql (the server stamps lastUpdated).
  test("created, updated and unchanged come from the answer's version and lastUpdated against the server's clock", async () => {
    const ahds = await standIn();
    try {
      const writer = writerFor(ahds.fhirUrl);
      const batch = patients(3);
      expect((await writer.writeBatch(batch)).map((r) => r.outcome)).toEqual(['created', 'created', 'created']);
      const again = await writer.writeBatch([batch[0]!, { ...batch[1]!, gender: 'male' } as SyncedResource, batch[2]!]);
      expect(again.map((r) => r.outcome)).toEqual(['unchanged', 'updated', 'unchanged']);
      // A fresh writer (another process) knows no versions: the server's clock decides.
      const other = writerFor(ahds.fhirUrl);
      await sleep(1100);
      expect((await other.writeBatch([batch[0]!])).map((r) => r.outcome)).toEqual(['unchanged']);
    } finally {
      await ahds.close();
    }
    // A server whose clock is 2 s behind this host: a real update is still "updated".
    const skew = -2000;
    const server = await fakeServer(({ body }) => {
      const now = Date.now() + skew;
      return {
        status: 200,
        headers: { date: new Date(now).toUTCString() },
        body: {
          resourceType: 'Bundle',
          type: 'batch-response',
          entry: body.entry.map((e: any) => ({
            response: { status: '200', etag: 'W/"2"', lastModified: new Date(Math.floor(now / 1000) * 1000).toISOString() },
            resource: { ...e.resource, meta: { versionId: '2', lastUpdated: new Date(now).toISOString() } },
          })),
        },
      };
    });
    try {
      expect((await writerFor(server.url).writeBatch(patients(1))).map((r) => r.outcome)).toEqual(['updated']);
    } finally {
      await server.close();
    }
  });

  test('the server clock bounds tighten with each answer', () => {
    const clock = new ServerClock();
    const t = Date.UTC(2026, 0, 1, 10, 0, 0);
    // Server 2.3 s behind; answers stamped at various points within their second.
    clock.observe(new Date(t - 2300).toUTCString(), t, t + 50);
    expect(clock.earliestServerTime(t)).toBeLessThanOrEqual(t - 2300);
    clock.observe(new Date(t + 10_000 - 2300).toUTCString(), t + 10_000, t + 10_040);
    // Stamped just after a second began: the tightest bound.
    clock.observe(new Date(t + 20_310 - 2300).toUTCString(), t + 20_310, t + 20_330);
    expect(clock.earliestServerTime(t)).toBeLessThanOrEqual(t - 2300);
    expect(clock.earliestServerTime(t)).toBeGreaterThan(t - 2300 - 400);
    expect(clock.uncertaintyMs).toBeLessThan(1000);
  });

  // KnownHeaders.cs: X-Request-Id on every answer; X-MS-AZUREFHIR-AUDIT-* copied into the audit log.
  test('X-Request-Id on every failure and dependency record; the run id in an audit header', async () => {
    const server = await fakeServer(({ body }) => ({ status: 200, body: batchAnswer(body, (i) => (i === 1 ? '400' : '201')) }));
    try {
      const telemetry = new RecordingTelemetry();
      const writer = writerFor(server.url, {}, telemetry);
      const results: string[] = [];
      const collecting = new BatchSink(writer, 10, (r) => void results.push(...r.map((x) => x.reason ?? '')), { runId: 'run-123' });
      for (const p of patients(3)) await collecting.add(p);
      await collecting.flush();
      expect(results[1]).toMatch(/\(X-Request-Id req-0\)\.$/);
      expect(server.received[0]!.headers[AHDS_AUDIT_HEADER.toLowerCase()]).toBe('run-123');
      const deps = telemetry.calls.filter((c) => c.kind === 'dependency').map((c) => c.data as DependencyCall);
      expect(deps.every((d) => d.requestId?.startsWith('req-'))).toBe(true);
    } finally {
      await server.close();
    }
  });

  // CapabilityStatementBuilder.cs (versioning per type) and SqlServerFhirDataStore.cs (versioned-update
  // refuses updates without If-Match): the writer refuses such a target before its first write.
  test('the target check refuses versioned-update and a FHIR version other than R4, in one sentence', async () => {
    const settings = (url: string) => ({
      ahds: {
        fhirUrl: url,
        audience: url,
        batchSize: 50,
        maxConcurrency: 4,
        initialConcurrency: 2,
        bundleTimeoutMs: 120_000,
        conflictRetries: 3,
        serverTimeLimitMs: 100_000,
        appMaxBundles: 0,
      },
      http: { timeoutMs: 10_000, retry: RETRY },
    });
    const noAuth = { getToken: async () => 'none', invalidate: () => undefined };
    for (const [options, message] of [
      [
        { versioning: { Observation: 'versioned-update' } },
        /^AHDS FHIR service keeps Observation under the versioned-update policy, which refuses every update without If-Match: set the service's versioning policy for them to versioned or no-version\.$/,
      ],
      [{ fhirVersion: '5.0.0' }, /^AHDS FHIR service speaks FHIR 5\.0\.0, not R4 \(4\.0\.x\): point AHDS_FHIR_URL at an R4 service\.$/],
    ] as const) {
      const ahds = await standIn(options as AhdsStandInOptions);
      try {
        const config = settings(ahds.fhirUrl);
        const writer = createAhdsWriter(config.ahds, config.http, noAuth, new RecordingTelemetry(), {
          checkTypes: ['Patient', 'Observation'],
        });
        const error = await writer.writeBatch(patients(1)).catch((e: unknown) => e);
        expect((error as Error).message).toMatch(message);
        expect(ahds.stats().entries).toBe(0);
      } finally {
        await ahds.close();
      }
    }
    const fine = await standIn();
    try {
      const config = settings(fine.fhirUrl);
      const writer = createAhdsWriter(config.ahds, config.http, noAuth, new RecordingTelemetry(), {
        checkTypes: ['Patient', 'Observation'],
      });
      expect((await writer.writeBatch(patients(2))).map((r) => r.outcome)).toEqual(['created', 'created']);
    } finally {
      await fine.close();
    }
    // Only the types the connector writes are checked: a policy on a type it never touches is no reason to refuse.
    const elsewhere = await standIn({ versioning: { Encounter: 'versioned-update' } } as AhdsStandInOptions);
    try {
      const config = settings(elsewhere.fhirUrl);
      const writer = createAhdsWriter(config.ahds, config.http, noAuth, new RecordingTelemetry(), {
        checkTypes: ['Patient', 'Observation'],
      });
      expect((await writer.writeBatch(patients(1))).map((r) => r.outcome)).toEqual(['created']);
      const all = createAhdsWriter(config.ahds, config.http, noAuth, new RecordingTelemetry(), { checkTypes: ['Patient', 'Encounter'] });
      expect(((await all.writeBatch(patients(1)).catch((e: unknown) => e)) as Error).message).toMatch(
        /keeps Encounter under the versioned-update policy/,
      );
    } finally {
      await elsewhere.close();
    }
  });
});
