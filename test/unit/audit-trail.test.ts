import type { AxiosInstance } from 'axios';
import { AhdsWriter, type WriteResult } from '../../src/ahds/writer';
import { AuditTrail, type AuditMode, type AuditWriter } from '../../src/audit/trail';
import type { SyncedResource } from '../../src/fhir/types';
import { createResourceMapper } from '../../src/mapping';
import { DEID_KEY, deidOptions, sampleObservations } from '../fixtures/mapping/load';

const policy = {
  conceptMaps: [],
  deid: false,
  uncarriedReferences: 'keep' as const,
  profileClaims: 'keep' as const,
  localCodeSystem: 'urn:x',
};

/** A writer that records what the trail asks of it and answers every write as created. */
function recordingWriter() {
  const calls = { deleted: [] as string[], written: [] as SyncedResource[][] };
  const writer: AuditWriter = {
    writeBatch: async (resources) => {
      calls.written.push([...resources]);
      return resources.map((r) => ({ resourceType: r.resourceType, id: r.id!, outcome: 'created', attempts: 1 }) as WriteResult);
    },
    delete: async (type, id) => {
      calls.deleted.push(`${type}/${id}`);
    },
  };
  return { writer, calls };
}

function mapped(mode: AuditMode) {
  const { writer, calls } = recordingWriter();
  const run = new AuditTrail({ mode, sourceFhirBase: 'https://emr.example/fhir', policy }, writer).begin({
    runId: 'r1',
    trigger: 'cli',
    startedAt: 0,
  })!;
  const resources = ['a', 'b'].map((id) => ({ resourceType: 'Patient', id, gender: 'female' }) as unknown as SyncedResource);
  resources.forEach((r) => run.noteSource(r, { ...r, meta: { lastUpdated: '2026-01-01T00:00:00Z' } } as SyncedResource));
  return { run, calls, resources };
}

const result = (id: string, outcome: WriteResult['outcome'], type = 'Patient'): WriteResult => ({
  resourceType: type,
  id,
  outcome,
  attempts: 1,
});

describe('the audit trail of a run', () => {
  test('per-resource: a Provenance created for a resource that then failed is taken back; the written one stays', async () => {
    const { run, calls, resources } = mapped('per-resource');
    const provenance = run.for(resources);
    expect(provenance).toHaveLength(2);
    await run.settled(
      [result('a', 'created'), result('b', 'failed')],
      provenance,
      provenance.map((p) => result(p.id!, 'created', 'Provenance')),
    );
    expect(calls.deleted).toEqual([`Provenance/${provenance[1]!.id}`]);
    expect(calls.written).toEqual([]);
    expect(run.counts).toMatchObject({ provenanceCreated: 1 });
  });

  test('per-run: a bundle Provenance that claims a failed resource is replaced by one covering only what was written', async () => {
    const { run, calls, resources } = mapped('per-run');
    const [provenance] = run.for(resources);
    expect((provenance as any).target).toHaveLength(2);
    await run.settled([result('a', 'updated'), result('b', 'failed')], [provenance!], [result(provenance!.id!, 'created', 'Provenance')]);
    expect(calls.deleted).toEqual([`Provenance/${provenance!.id}`]);
    expect(calls.written.map((w) => w.map((p: any) => p.target))).toEqual([[[{ reference: 'Patient/a' }]]]);
  });

  test('a Provenance that already existed (unchanged) stays even if its resource failed now: it describes content written before', async () => {
    const { run, calls, resources } = mapped('per-resource');
    const provenance = run.for(resources);
    await run.settled(
      [result('a', 'unchanged'), result('b', 'failed')],
      provenance,
      provenance.map((p) => result(p.id!, 'unchanged', 'Provenance')),
    );
    expect(calls.deleted).toEqual([]);
  });

  test('a Provenance refused while its resource was written (HAPI: target not there yet) is sent again alone', async () => {
    const { run, calls, resources } = mapped('per-resource');
    const provenance = run.for(resources);
    await run.settled([result('a', 'created'), result('b', 'created')], provenance, [
      result(provenance[0]!.id!, 'created', 'Provenance'),
      result(provenance[1]!.id!, 'failed', 'Provenance'),
    ]);
    expect(calls.written).toEqual([[provenance[1]]]);
    expect(run.counts).toMatchObject({ provenanceCreated: 2, provenanceFailed: 0 });
  });

  test('only mapped resources are vouched for, and the run records what it created or updated, not what was unchanged', async () => {
    const { run, calls, resources } = mapped('per-resource');
    const stranger = { resourceType: 'Patient', id: 'c' } as unknown as SyncedResource;
    expect(run.for([...resources, stranger])).toHaveLength(2);
    const provenance = run.for(resources);
    await run.settled(
      [result('a', 'created'), result('b', 'unchanged')],
      provenance,
      provenance.map((p) => result(p.id!, 'created', 'Provenance')),
    );
    await run.close('ok', 1000);
    const events = calls.written.at(-1) as any[];
    expect(events.map((e) => e.resourceType)).toEqual(['AuditEvent']);
    expect(events[0].entity.slice(1).map((e: any) => e.what.reference)).toEqual(['Patient/a']);
  });

  test('off: no run trail at all', () => {
    expect(
      new AuditTrail({ mode: 'off', sourceFhirBase: 'x', policy }, recordingWriter().writer).begin({
        runId: 'r',
        trigger: 'cli',
        startedAt: 0,
      }),
    ).toBeUndefined();
  });
});

describe('the writer with companions', () => {
  /** An HTTP client that answers every batch entry 201 and keeps the bundles it was sent. */
  function fakeTarget() {
    const bundles: Array<Array<{ resource: SyncedResource }>> = [];
    const http = {
      post: async (_url: string, body: string) => {
        const entry = (JSON.parse(body) as { entry: Array<{ resource: SyncedResource }> }).entry;
        bundles.push(entry);
        return {
          status: 200,
          headers: {},
          config: {},
          data: {
            resourceType: 'Bundle',
            type: 'batch-response',
            entry: entry.map((e) => ({ response: { status: '201' }, resource: { ...e.resource, meta: { versionId: '1' } } })),
          },
        };
      },
    } as unknown as AxiosInstance;
    const writer = new AhdsWriter({
      http,
      batchSize: 50,
      maxConcurrency: 2,
      initialConcurrency: 1,
      maxBundleEntries: 4,
      retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 1, maxTotalMs: 100 },
    });
    return { writer, bundles };
  }

  test('Provenance travels in the same bundle, after the resources it covers; results are the resources only', async () => {
    const { writer, bundles } = fakeTarget();
    const { run, resources } = mapped('per-resource');
    const results = await writer.writeBatch(resources, { runId: 'r1', companions: run });
    expect(results.map((r) => `${r.resourceType}/${r.id}:${r.outcome}`)).toEqual(['Patient/a:created', 'Patient/b:created']);
    expect(bundles.map((b) => b.map((e) => e.resource.resourceType))).toEqual([['Patient', 'Patient', 'Provenance', 'Provenance']]);
    expect(run.counts.provenanceCreated).toBe(2);
  });

  test('a bundle that would pass the most entries with its Provenance is written as two, each with its own', async () => {
    const { writer, bundles } = fakeTarget();
    const { run } = mapped('per-resource');
    const three = ['x', 'y', 'z'].map((id) => ({ resourceType: 'Patient', id }) as unknown as SyncedResource);
    three.forEach((r) => run.noteSource(r, { ...r, meta: { lastUpdated: '2026-01-01T00:00:00Z' } } as SyncedResource));
    await writer.writeBatch(three, { companions: run });
    expect(
      bundles.map((b) => b.map((e) => `${e.resource.resourceType}/${(e.resource as any).target?.[0].reference ?? e.resource.id}`)),
    ).toEqual([
      ['Patient/x', 'Patient/y', 'Provenance/Patient/x', 'Provenance/Patient/y'],
      ['Patient/z', 'Provenance/Patient/z'],
    ]);
  });
});

describe('Provenance.recorded under DEID_MODE=on', () => {
  const DAY = 86_400_000;
  const daysBetween = (a: string, b: string) => Math.round((Date.parse(b.slice(0, 10)) - Date.parse(a.slice(0, 10))) / DAY);
  const deidPolicy = { ...policy, deid: true };
  const trail = (mode: AuditMode) =>
    new AuditTrail(
      { mode, sourceFhirBase: 'https://emr.example/fhir', policy: deidPolicy, deidKey: DEID_KEY },
      recordingWriter().writer,
    ).begin({
      runId: 'r1',
      trigger: 'cli',
      startedAt: 0,
    })!;
  const mapper = createResourceMapper({ ...deidOptions(), carriedTypes: ['Patient', 'Observation', 'Practitioner'] });
  const deidMapped = (source: Record<string, any>) => {
    const outcome = mapper.map(source as SyncedResource);
    if (!outcome.ok) throw new Error(outcome.reason);
    return outcome.resource as SyncedResource & Record<string, any>;
  };
  // Sample Observations name their Patient in transaction-bundle form (urn:uuid:), as a source may.
  const [first, ...rest] = sampleObservations();
  const otherPatient = rest.find((o) => o.subject!.reference !== first!.subject!.reference)!;
  const withLastUpdated = (o: object, lastUpdated: string) => ({ ...o, meta: { lastUpdated } });

  test("moves by the same days as the resource's own dates (its patient's shift), time of day kept; the source instant appears nowhere", () => {
    const run = trail('per-resource');
    const source = withLastUpdated(first!, '2019-03-04T05:06:07.000Z');
    const out = deidMapped(source);
    run.noteSource(out, source as SyncedResource);
    const [provenance] = run.for([out]) as unknown as Array<Record<string, any>>;
    const shift = daysBetween(first!.effectiveDateTime!, out.effectiveDateTime);
    expect(shift).not.toBe(0);
    expect(daysBetween('2019-03-04', provenance!.recorded)).toBe(shift);
    expect(provenance!.recorded.slice(10)).toBe('T05:06:07.000Z');
    expect(JSON.stringify(provenance)).not.toContain('2019-03-04');
    expect(provenance).not.toHaveProperty('entity');
  });

  test('a resource of no patient moves by its own shift (the one its dates move by); a bundle Provenance records the latest shifted instant', () => {
    const run = trail('per-run');
    const practitioner = {
      resourceType: 'Practitioner',
      id: 'dr-1',
      active: true,
      birthDate: '1960-02-03',
      meta: { lastUpdated: '2020-01-01T00:00:00Z' },
    };
    const dr = deidMapped(practitioner);
    run.noteSource(dr, practitioner as unknown as SyncedResource);
    const a = withLastUpdated(first!, '2020-01-01T00:00:00Z');
    const b = withLastUpdated(otherPatient, '2020-01-01T00:00:00Z');
    const [outA, outB] = [deidMapped(a), deidMapped(b)];
    run.noteSource(outA, a as SyncedResource);
    run.noteSource(outB, b as SyncedResource);
    const alone = trail('per-resource');
    alone.noteSource(dr, practitioner as unknown as SyncedResource);
    expect(daysBetween('2020-01-01', (alone.for([dr])[0] as any).recorded)).toBe(daysBetween('1960-02-03', dr.birthDate));
    const [bundle] = run.for([dr, outA, outB]) as unknown as Array<Record<string, any>>;
    const shifts = [
      daysBetween('1960-02-03', dr.birthDate),
      daysBetween(first!.effectiveDateTime!, outA.effectiveDateTime),
      daysBetween(otherPatient.effectiveDateTime!, outB.effectiveDateTime),
    ];
    expect(new Set(shifts).size).toBeGreaterThan(1);
    expect(daysBetween('2020-01-01', bundle!.recorded)).toBe(Math.max(...shifts));
  });

  test('without de-identification recorded is the source lastUpdated; with it and no key the trail refuses to start', () => {
    const { run, resources } = mapped('per-resource');
    expect((run.for(resources)[0] as any).recorded).toBe('2026-01-01T00:00:00.000Z');
    expect(() => new AuditTrail({ mode: 'per-run', sourceFhirBase: 'x', policy: deidPolicy }, recordingWriter().writer)).toThrow(
      /DEID_KEY/,
    );
  });
});
