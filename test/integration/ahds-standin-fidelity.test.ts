/**
 * The AHDS stand-in behaves as microsoft/fhir-server, the code AHDS runs (snapshot 14f52857, 2026-08).
 * Each test names the fhir-server file whose behaviour it pins. Counts and shapes only, no timings.
 */
import type { BundleEntry } from '@medplum/fhirtypes';
import { startAhdsStandIn, type AhdsStandIn } from '../../stack/ahds';
import { startEntraStandIn, type EntraStandIn } from '../../stack/entra';
import { FaultInjector } from '../../stack/faults';
import { ahdsClient, observation, patient, putEntry, tokenFor, type AhdsTestClient } from '../helpers/ahds-client';

const PARALLEL = { 'x-bundle-processing-logic': 'parallel' };
const statuses = (bundle: any): string[] => bundle.entry.map((e: any) => e.response.status);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once the stand-in has read a request body (that request has claimed what it writes). */
async function untilArrived(ahds: AhdsStandIn): Promise<void> {
  while (ahds.stats().bytesIn === 0) await sleep(2);
}

jest.setTimeout(60_000);

describe('AHDS stand-in fidelity to fhir-server', () => {
  let entra: EntraStandIn;
  let ahds: AhdsStandIn;
  let c: AhdsTestClient;
  beforeAll(async () => {
    entra = await startEntraStandIn({
      clients: [
        { clientId: 'writer-app', clientSecret: 'w-secret' },
        { clientId: 'norole-app', clientSecret: 'n-secret' },
      ],
    });
    ahds = await startAhdsStandIn({ entra, withoutDataRole: ['norole-app'], versioning: { Encounter: 'versioned-update' } });
    c = await ahdsClient(ahds);
  });
  afterAll(async () => {
    await ahds.close();
    await entra.close();
  });
  afterEach(() => ahds.faults.configure({}));

  // BundleHandlerParallelOperations.cs: each throttled entry gets its own single server retry; a 429
  // does not stop the other entries (throttledEntryComponent is a by-value copy).
  test('parallel: a throttled entry does not stop the others', async () => {
    const n = 12;
    // Replays the draws: one for the request, one per entry, then one per throttled entry (its retry).
    const pattern = (seed: number): boolean[] => {
      const sim = new FaultInjector({ seed, batchThrottleRate: 0.4 });
      sim.next('/');
      const first = Array.from({ length: n }, () => sim.throttleEntry());
      return first.map((hit) => hit && sim.throttleEntry());
    };
    let seed = 1;
    while (!(pattern(seed).slice(0, 4).includes(true) && pattern(seed).filter(Boolean).length <= 4)) seed++;
    const throttled = pattern(seed);
    ahds.faults.configure({ seed, batchThrottleRate: 0.4, retryAfterMs: 5 });
    const res = await c.bundle(
      'batch',
      Array.from({ length: n }, (_, i) => putEntry(patient(`pt-${i}`))),
      PARALLEL,
    );
    expect(res.status).toBe(200);
    expect(statuses(res.body)).toEqual(throttled.map((t) => (t ? '429' : '201')));
  });

  // BundleOrchestratorOperation.cs + SqlStoreClient.cs (PR #5029): all PUTs of a parallel bundle are
  // one SQL merge; above the merge concurrency every PUT of the bundle answers 429.
  test('parallel: a throttled merge answers 429 for every PUT of the bundle', async () => {
    const capped = await startAhdsStandIn({ requireAuth: false, mergeCapacity: 1, faults: { perEntryLatencyMs: 150 } });
    try {
      const cc = await ahdsClient(capped);
      const [a, b] = await Promise.all([
        cc.bundle('batch', [putEntry(patient('m-a1')), putEntry(patient('m-a2'))], PARALLEL),
        untilArrived(capped).then(() => cc.bundle('batch', [putEntry(patient('m-b1')), putEntry(patient('m-b2'))], PARALLEL)),
      ]);
      expect(statuses(a.body)).toEqual(['201', '201']);
      expect(statuses(b.body)).toEqual(['429', '429']);
      expect(capped.versionCount('Patient', 'm-b1')).toBe(0);
    } finally {
      await capped.close();
    }
  });

  // FhirJsonInputFormatter.cs + ValidateModelStateAttribute.cs (PR #3129): a parse error anywhere
  // (unknown element, wrong JSON type) refuses the whole bundle with 400; nothing is stored.
  test('a parse error in one entry refuses the whole bundle with 400', async () => {
    const entries: BundleEntry[] = [
      putEntry(patient('wb-1')),
      { resource: { ...patient('wb-2'), favouriteColour: 'blue' } as any, request: { method: 'PUT', url: 'Patient/wb-2' } },
      putEntry(patient('wb-3')),
    ];
    const res = await c.bundle('batch', entries, PARALLEL);
    expect(res.status).toBe(400);
    expect((res.body as any).issue[0].diagnostics).toContain('Bundle.entry[1]');
    expect(ahds.versionCount('Patient', 'wb-1')).toBe(0);
    const wrongType = await c.bundle(
      'batch',
      [putEntry(patient('wb-4')), putEntry({ ...patient('wb-5'), active: 'yes' } as any)],
      PARALLEL,
    );
    expect(wrongType.status).toBe(400);
  });

  // BundleHandler.cs: a caller with no FHIR data action at all gets 403 for the whole bundle.
  test('a caller without any data role gets 403 for the whole bundle', async () => {
    const norole = await ahdsClient(ahds, await tokenFor(ahds, { clientId: 'norole-app', clientSecret: 'n-secret' }));
    const res = await norole.bundle('batch', [putEntry(patient('nr-1')), putEntry(patient('nr-2'))], PARALLEL);
    expect(res.status).toBe(403);
    expect((res.body as any).issue[0].code).toBe('forbidden');
    expect(ahds.versionCount('Patient', 'nr-1')).toBe(0);
  });

  // BundleHandler.AddFinalOperationOutcomesIfApplicable: an invalid processing-logic value is
  // processed with the default (sequential) logic and answers one extra 405 warning entry.
  test('an invalid processing-logic header adds a trailing 405 entry', async () => {
    const res = await c.bundle('batch', [putEntry(patient('ip-1')), putEntry(patient('ip-1', 'Later'))], {
      'x-bundle-processing-logic': 'paralel',
    });
    expect(statuses(res.body)).toEqual(['201', '200', '405']);
    expect((res.body.entry![2].response!.outcome as any).issue[0].severity).toBe('warning');
  });

  // ThrottlingMiddleware.cs: over the instance's concurrent-request limit, 429 at once, body
  // application/json without id, x-ms-retry-after-ms starting at 20 ms and growing x1.2 per 500 ms
  // period while under 99 % of requests are admitted.
  test('over capacity, requests answer 429 with an adaptive x-ms-retry-after-ms', async () => {
    const capped = await startAhdsStandIn({ requireAuth: false, capacity: 2, faults: { latencyMs: 1500 } });
    try {
      const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => fetch(`${capped.fhirUrl}/Patient/cap-${i}`)));
      const throttled = answers.filter((r) => r.status === 429);
      expect(throttled).toHaveLength(4);
      expect(capped.cap.peak).toBe(2);
      const first = throttled[0]!;
      expect(first.headers.get('content-type')).toMatch(/^application\/json/);
      const body = (await first.json()) as any;
      expect(body.id).toBeUndefined();
      expect(body.issue[0].diagnostics).toBe('The maximum number of concurrent API calls on this instance was reached.');
      expect(Number(first.headers.get('x-ms-retry-after-ms'))).toBe(20);
      expect(first.headers.get('retry-after')).toBe('1');
      // Nothing admitted for a while: the asked wait grows.
      capped.setCapacity(0);
      let asked = 20;
      for (let i = 0; i < 40 && asked <= 24; i++) {
        asked = Number((await fetch(`${capped.fhirUrl}/Patient/x`)).headers.get('x-ms-retry-after-ms'));
        await sleep(50);
      }
      expect(asked).toBeGreaterThan(24);
      expect(asked).toBeLessThanOrEqual(60_000);
    } finally {
      await capped.close();
    }
  });

  // SqlServerFhirDataStore.cs: a merge that conflicts with another writer of the same resource is
  // retried (30 x 1 s), then answers 412 "attempted to be updated concurrently".
  test('a write while another request still writes the same resource ends in 412', async () => {
    const slow = await startAhdsStandIn({ requireAuth: false, conflictWaitMs: 50, faults: { perEntryLatencyMs: 400 } });
    try {
      const cc = await ahdsClient(slow);
      const first = cc.bundle('batch', [putEntry(patient('cu-1', 'First'))], PARALLEL);
      await untilArrived(slow);
      const second = await cc.put(patient('cu-1', 'Second'));
      expect(second.status).toBe(412);
      expect(second.body.issue[0].diagnostics).toContain('updated concurrently');
      expect(statuses((await first).body)).toEqual(['201']);
      expect(slow.stats().overlappingWrites).toBe(1);
    } finally {
      await slow.close();
    }
  });

  // SqlServerFhirDataStore.cs + CapabilityStatementBuilder.cs: under versioned-update an update
  // without If-Match is 400; If-Match on a missing resource 404; the policy is in the CapabilityStatement.
  test('the versioned-update policy requires If-Match on updates', async () => {
    const enc = { resourceType: 'Encounter', id: 'vu-1', status: 'finished', class: { code: 'AMB' } } as any;
    expect((await c.put(enc)).status).toBe(201);
    const update = await c.put({ ...enc, status: 'cancelled' });
    expect(update.status).toBe(400);
    expect(update.body.issue[0].diagnostics).toBe("A valid if-match header is required for resource type 'Encounter'.");
    expect((await c.put({ ...enc, status: 'cancelled' }, { 'if-match': 'W/"1"' })).status).toBe(200);
    expect((await c.put({ ...enc, id: 'vu-missing' }, { 'if-match': 'W/"1"' })).status).toBe(404);
    const meta = await c.request('GET', '/metadata');
    const byType = Object.fromEntries(meta.body.rest[0].resource.map((r: any) => [r.type, r.versioning]));
    expect(byType).toMatchObject({ Encounter: 'versioned-update', Patient: 'versioned' });
  });

  // ResourceContentValidator.cs (DotNetAttributeValidation, recurse: false): only the resource's own
  // elements are checked (cardinality, primitive formats). Nested problems and invariants pass.
  test("validation is AHDS's: top-level cardinality and formats only, nested problems are stored", async () => {
    const nestedMissing = { ...observation('av-1', 'p'), component: [{ valueQuantity: { value: 1 } }] } as any; // component.code is 1..1
    expect((await c.put(nestedMissing)).status).toBe(201);
    const nestedFormat = { ...observation('av-2', 'p'), effectiveDateTime: undefined, effectivePeriod: { start: 'yesterday' } } as any;
    expect((await c.put(nestedFormat)).status).toBe(201);
    const invariant = { ...patient('av-3'), contact: [{}] } as any; // pat-1: contact needs a detail
    expect((await c.put(invariant)).status).toBe(201);
    const topFormat = await c.put({ ...patient('av-4'), birthDate: '03/02/1980' } as any);
    expect(topFormat.status).toBe(400);
    const { status: _s, ...noStatus } = observation('av-5', 'p') as any;
    expect((await c.put(noStatus)).body.issue[0].diagnostics).toBe(
      'Element with minimum cardinality 1 cannot be null. At Observation.status.',
    );
  });

  // NarrativeHtmlSanitizer.cs: disallowed elements, attributes and href schemes in text.div are 400.
  test('the narrative sanitizer refuses scripts, event handlers and javascript: links', async () => {
    const withDiv = (id: string, div: string) => ({ ...patient(id), text: { status: 'generated', div } }) as any;
    const ok = await c.put(
      withDiv('nv-0', '<div xmlns="http://www.w3.org/1999/xhtml"><p>Ann <b>Smith</b></p><a href="https://example.org">x</a></div>'),
    );
    expect(ok.status).toBe(201);
    for (const [i, div] of [
      '<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></div>',
      '<div xmlns="http://www.w3.org/1999/xhtml"><p onclick="alert(1)">x</p></div>',
      '<div xmlns="http://www.w3.org/1999/xhtml"><a href=" javascript:alert(1)">x</a></div>',
      '<div xmlns="http://www.w3.org/1999/xhtml"><img src="vbscript:x"/></div>',
      '<p>not in a div</p>',
      '<div xmlns="http://www.w3.org/1999/xhtml">   </div>',
    ].entries()) {
      const res = await c.put(withDiv(`nv-${i + 1}`, div));
      expect(res.status).toBe(400);
    }
  });
});
