import type { BundleEntry } from '@medplum/fhirtypes';
import { FaultInjector, type FaultProfile } from '../../stack/faults';
import { startAhdsStandIn, type AhdsStandIn } from '../../stack/ahds';
import { ahdsClient, observation, patient, putEntry, type AhdsTestClient } from '../helpers/ahds-client';

const PARALLEL = { 'x-bundle-processing-logic': 'parallel' };
const statuses = (bundle: any): string[] => bundle.entry.map((e: any) => e.response.status);

/**
 * Replays the stand-in's seeded draws for one batch request (one draw for the request fault, then the
 * throttle draws per entry) to pick seeds that show a given throttling pattern.
 */
function throttlePattern(profile: FaultProfile, n: number): { stopAt: number; retriedOk: number } {
  const sim = new FaultInjector(profile);
  sim.next('/');
  let retriedOk = 0;
  for (let i = 0; i < n; i++) {
    if (sim.throttleEntry()) {
      if (sim.throttleEntry()) return { stopAt: i, retriedOk };
      retriedOk++;
    }
  }
  return { stopAt: n, retriedOk };
}

function findSeed(n: number, rate: number, want: (p: { stopAt: number; retriedOk: number }) => boolean): number {
  for (let seed = 1; seed < 100_000; seed++) {
    if (want(throttlePattern({ seed, batchThrottleRate: rate }, n))) return seed;
  }
  throw new Error('no seed found');
}

describe('AHDS FHIR stand-in: bundles and faults', () => {
  let ahds: AhdsStandIn;
  let c: AhdsTestClient;
  beforeAll(async () => {
    ahds = await startAhdsStandIn();
    c = await ahdsClient(ahds);
  });
  afterAll(() => ahds.close());
  afterEach(() => ahds.faults.configure({}));

  test('batch answers 200 with per-entry statuses', async () => {
    await c.put(patient('b-existing'));
    await c.put(patient('b-del'));
    const { code: _code, ...invalidObs } = observation('b-bad', 'b-existing') as any;
    const res = await c.bundle('batch', [
      putEntry(patient('b-new')),
      putEntry(patient('b-existing', 'Changed')),
      { resource: invalidObs, request: { method: 'PUT', url: 'Observation/b-bad' } },
      { request: { method: 'GET', url: 'Patient/b-existing' } },
      { request: { method: 'GET', url: 'Patient/b-missing' } },
      { request: { method: 'DELETE', url: 'Patient/b-del' } },
    ]);
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('batch-response');
    expect(statuses(res.body)).toEqual(['201', '200', '400', '200', '404', '204']);
    const created = res.body.entry![0];
    // fhir-server BundleHandler + FhirResultExtensions: lastModified parsed from the RFC 1123
    // Last-Modified header, so whole seconds (+00:00); the resource's meta keeps milliseconds.
    expect(created.response).toMatchObject({
      location: `${ahds.fhirUrl}/Patient/b-new/_history/1`,
      etag: 'W/"1"',
      lastModified: created.resource!.meta!.lastUpdated!.replace(/\.\d{3}Z$/, '+00:00'),
    });
    expect(res.body.entry![1].response!.etag).toBe('W/"2"');
    const failed = res.body.entry![2].response!.outcome as any;
    expect(failed.resourceType).toBe('OperationOutcome');
    expect(failed.issue[0].code).toBe('invalid');
    expect(res.body.entry![3].resource).toMatchObject({ id: 'b-existing', meta: { versionId: '2' } });
    expect((res.body.entry![4].response!.outcome as any).issue[0].code).toBe('not-found');
    expect(await ahds.read('Patient', 'b-del')).toBeUndefined();
  });

  test('batch entries accept absolute and leading-slash URLs', async () => {
    const res = await c.bundle('batch', [
      { resource: patient('b-abs'), request: { method: 'PUT', url: `${ahds.fhirUrl}/Patient/b-abs` } },
      { resource: patient('b-slash'), request: { method: 'PUT', url: '/Patient/b-slash' } },
    ]);
    expect(statuses(res.body)).toEqual(['201', '201']);
  });

  test('batch with 501 entries is rejected', async () => {
    const entries = Array.from({ length: 501 }, (_, i) => putEntry(patient(`big-${i}`)));
    const res = await c.bundle('batch', entries);
    expect(res.status).toBe(400);
    expect((res.body as any).issue[0].diagnostics).toBe('The number of entries in the bundle exceeded the configured limit of 500.');
    expect(ahds.versionCount('Patient', 'big-0')).toBe(0);
  });

  test('batch with 500 entries is accepted', async () => {
    const entries = Array.from({ length: 500 }, (_, i) => putEntry(patient(`ok-${i}`)));
    const res = await c.bundle('batch', entries, PARALLEL);
    expect(res.status).toBe(200);
    expect(statuses(res.body)).toEqual(Array(500).fill('201'));
  });

  test('sequential batch with two entries for one resource applies both in order', async () => {
    const res = await c.bundle('batch', [putEntry(patient('seq-1', 'First')), putEntry(patient('seq-1', 'Second'))]);
    expect(statuses(res.body)).toEqual(['201', '200']);
    expect((await ahds.read('Patient', 'seq-1')) as any).toMatchObject({ name: [{ family: 'Second' }], meta: { versionId: '2' } });
  });

  // fhir-server BundleOrchestratorOperation.cs (AppendResourceAsync) and its E2E BundleBatchTests.cs:
  // in a parallel batch the second copy of a resource is a per-entry 400 `duplicate`; the rest is stored.
  test('parallel batch with two entries for one resource answers a per-entry 400 duplicate for the second', async () => {
    const res = await c.bundle(
      'batch',
      [putEntry(patient('par-ok')), putEntry(patient('par-dup', 'A')), putEntry(patient('par-dup', 'B'))],
      PARALLEL,
    );
    expect(res.status).toBe(200);
    expect(statuses(res.body)).toEqual(['201', '201', '400']);
    const outcome = res.body.entry![2].response!.outcome as any;
    expect(outcome.issue[0]).toMatchObject({ code: 'duplicate', diagnostics: 'A resource should only appear once in each Bundle.' });
    expect((await ahds.read('Patient', 'par-dup')) as any).toMatchObject({ name: [{ family: 'A' }] });
    expect(ahds.versionCount('Patient', 'par-ok')).toBe(1);
  });

  test('parallel batch without duplicates stores every entry', async () => {
    const entries = Array.from({ length: 20 }, (_, i) => putEntry(i % 2 ? patient(`pp-${i}`) : observation(`po-${i}`, `pp-${i + 1}`)));
    const res = await c.bundle('batch', entries, PARALLEL);
    expect(statuses(res.body)).toEqual(Array(20).fill('201'));
    expect((await ahds.snapshot('Observation')).filter((r) => r.id!.startsWith('po-'))).toHaveLength(10);
  });

  test('a batch entry throttled once is retried by the server and succeeds', async () => {
    const seed = findSeed(10, 0.3, (p) => p.stopAt === 10 && p.retriedOk >= 2);
    ahds.faults.configure({ seed, batchThrottleRate: 0.3, retryAfterMs: 5 });
    const hitsBefore = ahds.faults.injected.batchThrottle ?? 0;
    const res = await c.bundle(
      'batch',
      Array.from({ length: 10 }, (_, i) => putEntry(patient(`rt-${i}`))),
    );
    expect(statuses(res.body)).toEqual(Array(10).fill('201'));
    expect(ahds.faults.injected.batchThrottle - hitsBefore).toBeGreaterThanOrEqual(2);
  });

  // fhir-server BundleHandler.cs (sequential): the server retries a throttled entry once after its
  // Retry-After; still throttled, it and every later entry answer 429 and the outer answer carries the wait.
  test('sequential: a throttled batch entry is retried once then the rest answer 429', async () => {
    const pattern = { stopAt: -1, retriedOk: 0 };
    const seed = findSeed(10, 0.3, (p) => {
      Object.assign(pattern, p);
      return p.stopAt >= 3 && p.stopAt <= 7;
    });
    ahds.faults.configure({ seed, batchThrottleRate: 0.3, retryAfterMs: 5 });
    const hitsBefore = ahds.faults.injected.batchThrottle ?? 0;
    const entries = Array.from({ length: 10 }, (_, i) => putEntry(patient(`th-${i}`)));
    const res = await c.bundle('batch', entries);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-ms-retry-after-ms')).toBe('5');
    const k = pattern.stopAt;
    expect(statuses(res.body)).toEqual([...Array(k).fill('201'), ...Array(10 - k).fill('429')]);
    const outcome = res.body.entry![k].response!.outcome as any;
    expect(outcome.issue[0].code).toBe('throttled');
    // Two draws hit on the stopping entry (the try and the server's single retry).
    expect(ahds.faults.injected.batchThrottle - hitsBefore).toBe(pattern.retriedOk + 2);
    expect(ahds.versionCount('Patient', `th-${k}`)).toBe(0);
    expect(ahds.versionCount('Patient', `th-${k - 1}`)).toBe(1);
  });

  test('resubmitting exactly the 429 entries completes the batch', async () => {
    const seed = findSeed(10, 0.3, (p) => p.stopAt >= 2 && p.stopAt <= 8);
    ahds.faults.configure({ seed, batchThrottleRate: 0.3, retryAfterMs: 5 });
    const entries = Array.from({ length: 10 }, (_, i) => putEntry(patient(`rs-${i}`)));
    const first = await c.bundle('batch', entries);
    const retry = entries.filter((_, i) => first.body.entry![i].response!.status === '429');
    expect(retry.length).toBeGreaterThan(0);
    ahds.faults.configure({});
    const second = await c.bundle('batch', retry);
    expect(statuses(second.body).every((s) => s === '201')).toBe(true);
    expect(entries.every((e) => ahds.versionCount('Patient', e.resource!.id!) === 1)).toBe(true);
  });

  test('transaction is atomic', async () => {
    const { code: _code, ...invalidObs } = observation('tx-bad', 'tx-p1') as any;
    const res = await c.bundle('transaction', [
      putEntry(patient('tx-p1')),
      putEntry(observation('tx-o1', 'tx-p1')),
      { resource: invalidObs, request: { method: 'PUT', url: 'Observation/tx-bad' } },
    ]);
    expect(res.status).toBe(400);
    const oo = res.body as any;
    expect(oo.resourceType).toBe('OperationOutcome');
    expect(oo.issue[0].diagnostics).toBe("Transaction failed on 'PUT' for the requested url '/Observation/tx-bad'.");
    expect(oo.issue[1].diagnostics).toBe('Element with minimum cardinality 1 cannot be null. At Observation.code.');
    expect(ahds.versionCount('Patient', 'tx-p1')).toBe(0);
    expect(ahds.versionCount('Observation', 'tx-o1')).toBe(0);
  });

  test('a successful transaction answers transaction-response with every entry applied', async () => {
    await c.put(patient('tx-old'));
    const res = await c.bundle('transaction', [
      putEntry(patient('tx-ok')),
      putEntry(patient('tx-old', 'Updated')),
      putEntry(observation('tx-obs', 'tx-ok')),
    ]);
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('transaction-response');
    expect(statuses(res.body)).toEqual(['201', '200', '201']);
    expect(ahds.versionCount('Patient', 'tx-old')).toBe(2);
  });

  test('a transaction with two entries for one resource is rejected', async () => {
    const res = await c.bundle('transaction', [putEntry(patient('tx-dup')), putEntry(patient('tx-dup', 'B'))]);
    expect(res.status).toBe(400);
    expect(ahds.versionCount('Patient', 'tx-dup')).toBe(0);
  });

  test('a throttled transaction fails as a whole with 429', async () => {
    ahds.faults.configure({ batchThrottleRate: 1, retryAfterMs: 1500 });
    const res = await c.bundle('transaction', [putEntry(patient('tx-thr'))]);
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('2');
    expect(ahds.versionCount('Patient', 'tx-thr')).toBe(0);
  });

  // fhir-server FhirController.cs: only conditional create reads Prefer return=; PUTs, single or in
  // a bundle (BundleHandler copies Prefer into each entry), answer the full stored resource.
  test('Prefer: return=minimal is ignored: batch answers carry every stored resource', async () => {
    const res = await c.bundle('batch', [putEntry(patient('min-1'))], { prefer: 'return=minimal', ...PARALLEL });
    expect(res.body.entry![0].resource).toMatchObject({ resourceType: 'Patient', id: 'min-1', meta: { versionId: '1' } });
    expect(res.body.entry![0].response).toMatchObject({ status: '201', etag: 'W/"1"' });
    const single = await c.put(patient('min-1', 'Other'), { prefer: 'return=minimal' });
    expect(single.body).toMatchObject({ resourceType: 'Patient', id: 'min-1', meta: { versionId: '2' } });
  });

  test('a Bundle of another type is rejected', async () => {
    const res = await c.request('POST', '/', { resourceType: 'Bundle', type: 'collection', entry: [] });
    expect(res.status).toBe(400);
  });

  // ------------------------------------------------------------------ request-level faults

  test('429 carries Retry-After and x-ms-retry-after-ms', async () => {
    ahds.faults.configure({ rates: { status429: 1 }, retryAfterMs: 2500 });
    const res = await c.put(patient('f-429'));
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('3');
    expect(res.headers.get('x-ms-retry-after-ms')).toBe('2500');
    expect(res.headers.get('content-type')).toBe('application/fhir+json; charset=utf-8');
    expect(res.body.issue[0]).toMatchObject({
      code: 'throttled',
      diagnostics: 'The maximum number of concurrent API calls on this instance was reached.',
    });
    expect(res.body.id).toBeTruthy();
    expect(ahds.versionCount('Patient', 'f-429')).toBe(0);
  });

  test('503 carries Retry-After; 500 and 408 answer OperationOutcomes', async () => {
    ahds.faults.configure({ rates: { status503: 1 }, retryAfterMs: 800 });
    const r503 = await c.put(patient('f-5xx'));
    expect(r503.status).toBe(503);
    expect(r503.headers.get('retry-after')).toBe('1');
    expect(r503.headers.get('x-ms-retry-after-ms')).toBe('800');
    expect(r503.body.resourceType).toBe('OperationOutcome');
    ahds.faults.configure({ rates: { status500: 1 } });
    const r500 = await c.put(patient('f-5xx'));
    expect(r500.status).toBe(500);
    expect(r500.body.issue[0].code).toBe('exception');
    ahds.faults.configure({ rates: { status408: 1 } });
    const r408 = await c.put(patient('f-5xx'));
    expect(r408.status).toBe(408);
    expect(r408.body.issue[0].code).toBe('timeout');
    expect(ahds.versionCount('Patient', 'f-5xx')).toBe(0);
  });

  test('an injected reset destroys the connection without an answer', async () => {
    ahds.faults.configure({ rates: { reset: 1 } });
    await expect(c.put(patient('f-reset'))).rejects.toThrow();
    expect(ahds.versionCount('Patient', 'f-reset')).toBe(0);
    expect(ahds.faults.injected.reset).toBeGreaterThanOrEqual(1);
  });

  test('an injected fault on a bundle request fails the whole request', async () => {
    ahds.faults.configure({ rates: { status429: 1 } });
    const res = await c.bundle('batch', [putEntry(patient('f-bundle'))]);
    expect(res.status).toBe(429);
    expect(ahds.versionCount('Patient', 'f-bundle')).toBe(0);
  });

  test('paths listed in exemptPaths are never faulted', async () => {
    ahds.faults.configure({ rates: { status503: 1 }, exemptPaths: [/^\/metadata$/] });
    expect((await fetch(`${ahds.fhirUrl}/metadata`)).status).toBe(200);
    expect((await c.put(patient('f-exempt'))).status).toBe(503);
  });

  test('faults tokenLifetimeSeconds shortens tokens from the Entra stand-in the server started', async () => {
    ahds.faults.configure({ tokenLifetimeSeconds: 30 });
    const res = await fetch(ahds.entra.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: ahds.entra.clientId,
        client_secret: ahds.entra.clientSecret,
        scope: `${ahds.audience}/.default`,
      }).toString(),
    });
    expect(((await res.json()) as { expires_in: number }).expires_in).toBe(30);
  });

  test('stats count bundle entries and entry statuses', async () => {
    ahds.resetStats();
    await c.bundle('batch', [putEntry(patient('st-1')), putEntry(patient('st-1')), { request: { method: 'GET', url: 'Patient/none' } }]);
    expect(ahds.stats()).toMatchObject({
      requests: 1,
      entries: 3,
      writes: 2,
      versionsCreated: 1,
      noopWrites: 1,
      byStatus: { '200': 1 },
      byEntryStatus: { '201': 1, '200': 1, '404': 1 },
    });
  });

  // fhir-server SearchOptionsFactory (clamp with an informational issue) and BundleFactory (outcome first).
  test('search _count is capped at 1000, saying so in an OperationOutcome entry placed first', async () => {
    for (let b = 0; b < 3; b++) {
      const entries: BundleEntry[] = Array.from({ length: 400 }, (_, i) => putEntry(observation(`cap-${b}-${i}`, 'p')));
      await c.bundle('batch', entries, PARALLEL);
    }
    const res = await c.request('GET', '/Observation?_count=5000&_total=accurate');
    expect(res.status).toBe(200);
    expect(res.body.total).toBeGreaterThanOrEqual(1200);
    expect(res.body.entry).toHaveLength(1001);
    expect(res.body.entry[0]).toMatchObject({
      search: { mode: 'outcome' },
      resource: { resourceType: 'OperationOutcome', issue: [{ severity: 'information' }] },
    });
    expect(typeof res.body.entry[0].resource.id).toBe('string');
    expect(res.body.entry.slice(1).every((e: any) => e.resource.resourceType === 'Observation')).toBe(true);
    expect(res.body.link.some((l: any) => l.relation === 'next')).toBe(true);
  });
});

describe('AHDS FHIR stand-in: bundle time limit', () => {
  // Azure API for FHIR release notes (May 2024) and fhir-server BundleConfiguration.MaxExecutionTimeInSeconds:
  // a request over 100 s answers HTTP 408 as a whole.
  test('a bundle that would run past the time limit answers HTTP 408 as a whole', async () => {
    // 50 ms per entry against a 230 ms limit: ten entries do not fit.
    const ahds = await startAhdsStandIn({ bundleTimeLimitMs: 230, faults: { perEntryLatencyMs: 50 } });
    try {
      const c = await ahdsClient(ahds);
      const res = await c.bundle(
        'batch',
        Array.from({ length: 10 }, (_, i) => putEntry(patient(`tl-${i}`))),
      );
      expect(res.status).toBe(408);
      expect((res.body as any).issue[0].code).toBe('too-long');
      expect(ahds.versionCount('Patient', 'tl-0')).toBe(0);
      const fits = await c.bundle(
        'batch',
        Array.from({ length: 4 }, (_, i) => putEntry(patient(`tl-${i}`))),
      );
      expect(statuses(fits.body)).toEqual(Array(4).fill('201'));
    } finally {
      await ahds.close();
    }
  });

  test('maxBundleEntries is configurable', async () => {
    const ahds = await startAhdsStandIn({ maxBundleEntries: 2 });
    try {
      const c = await ahdsClient(ahds);
      const res = await c.bundle('batch', [putEntry(patient('m1')), putEntry(patient('m2')), putEntry(patient('m3'))]);
      expect(res.status).toBe(400);
      expect((res.body as any).issue[0].diagnostics).toBe('The number of entries in the bundle exceeded the configured limit of 2.');
    } finally {
      await ahds.close();
    }
  });

  test('requireAuth false serves requests without a token', async () => {
    const ahds = await startAhdsStandIn({ requireAuth: false });
    try {
      const res = await fetch(`${ahds.fhirUrl}/Patient/na`, {
        method: 'PUT',
        headers: { 'content-type': 'application/fhir+json' },
        body: JSON.stringify(patient('na')),
      });
      expect(res.status).toBe(201);
    } finally {
      await ahds.close();
    }
  });
});
