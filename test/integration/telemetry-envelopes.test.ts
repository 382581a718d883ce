import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { createTelemetry, EVENTS, METRICS, NoopTelemetry, type Telemetry } from '../../src/telemetry';
import { select, startIngestionCapture, type Envelope, type IngestionCapture } from '../helpers/appinsights-capture';

// Planted in inputs; none of them may reach the ingestion endpoint.
const JWT = 'eyJhbGciOiJSUzM4NCIsImtpZCI6ImsxIn0.eyJpc3MiOiJjbGllbnQtMSIsInN1YiI6ImNsaWVudC0xIn0.c2lnbmF0dXJlLWJ5dGVz';
const PEM_BODY = 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7plantedKeyMaterial';
const PEM = `-----BEGIN PRIVATE KEY-----\n${PEM_BODY}\n-----END PRIVATE KEY-----`;
const SSN = '123-45-6789';
const FAMILY = 'Quuxleyford';
const GIVEN = 'Zebediah';
const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const PARENT_SPAN = 'b7ad6b7169203331';
const INVOCATION_ID = 'c6a3f4a2-1b2c-4d5e-8f90-1234567890ab';

const props = (e: Envelope) => (e.data.baseData.properties ?? {}) as Record<string, string>;

describe('Application Insights envelopes (local HTTPS ingestion endpoint)', () => {
  let capture: IngestionCapture;
  let telemetry: Telemetry;
  let all: Envelope[];

  beforeAll(async () => {
    // Statsbeat would try Microsoft's endpoints; nothing but our capture server is reachable here.
    process.env.APPLICATION_INSIGHTS_NO_STATSBEAT = 'true';
    process.env.APPLICATIONINSIGHTS_STATSBEAT_DISABLED = 'true';
    process.env.APPLICATIONINSIGHTS_SDKSTATS_DISABLED = 'true';
    capture = await startIngestionCapture();
    telemetry = createTelemetry({
      connectionString: capture.connectionString,
      cloudRole: 'fhir-sync-test',
      disableOfflineStorage: true,
      samplingRatio: 1,
    });

    const op = telemetry.withOperation(`00-${TRACE_ID}-${PARENT_SPAN}-01`);
    op.runCompleted({
      runId: 'run-42',
      trigger: 'timer',
      operation: 'incremental',
      windowStart: '2024-05-01T00:00:00Z',
      windowEnd: '2024-05-01T00:05:00Z',
      read: 10,
      created: 4,
      updated: 3,
      unchanged: 2,
      failed: 1,
      deadLettered: 1,
      durationMs: 2000,
      lagSeconds: 90,
      unmappedCodes: 3,
      byType: {
        Patient: { created: 1, updated: 1, unchanged: 0, failed: 0 },
        Observation: { created: 3, updated: 2, unchanged: 2, failed: 1 },
      },
    });
    op.dependency({
      side: 'openemr',
      name: `GET /Patient?family=${FAMILY}&given=${GIVEN}`,
      target: 'OpenEMR FHIR',
      resultCode: 200,
      durationMs: 35,
      success: true,
    });
    op.dependency({ side: 'ahds', name: 'POST /', target: 'AHDS FHIR', resultCode: 429, durationMs: 12, success: false });
    op.retry('ahds', 429);
    op.retry('ahds', 429);
    op.retry('openemr', 'network');
    op.authFailure('openemr', `invalid_client: assertion ${JWT} rejected (Authorization: Bearer ${JWT})`);
    op.deadLetter({
      resourceType: 'Patient',
      id: 'p-1',
      status: 422,
      reason: `422 {"resourceType":"Patient","name":[{"family":"${FAMILY}","given":["${GIVEN}"]}],"identifier":[{"value":"${SSN}"}]} key ${PEM}`,
    });
    op.unmappedCodes([{ system: 'urn:openemr:local-code', code: 'GLU-X', count: 3 }]);
    op.reconcileCompleted({ missingInTarget: 2, deletedInSource: 1, mode: 'report-only' });
    telemetry.gauge(METRICS.deadLettersPending, 5, { detail: `ssn ${SSN}` });
    telemetry.withOperation(INVOCATION_ID).deadLetter({ resourceType: 'Observation', id: 'o-9', reason: `token ${JWT}` });
    await telemetry.flush();

    all = await capture.waitFor(
      (envs) =>
        select.events(envs).length >= 5 &&
        select.dependencies(envs).length >= 2 &&
        select.metrics(envs, METRICS.deadLettersPending).length >= 1 &&
        select.metrics(envs, METRICS.retries).length >= 2,
      20000,
    );
  });

  afterAll(async () => {
    await telemetry?.flush();
    await capture?.close();
  });

  it('posts JSON envelopes to /v2.1/track with the instrumentation key of the connection string', () => {
    expect(capture.requests().some((r) => r.method === 'POST' && r.path === '/v2.1/track')).toBe(true);
    for (const e of all) expect(e.iKey).toBe(capture.instrumentationKey);
  });

  it('sends one FhirSync.Run event with identifiers as properties and counts as measurements', () => {
    const runs = select.events(all, EVENTS.syncRun);
    expect(runs).toHaveLength(1);
    const run = runs[0].data.baseData;
    expect(run.properties).toMatchObject({
      runId: 'run-42',
      trigger: 'timer',
      operation: 'incremental',
      window: '2024-05-01T00:00:00Z/2024-05-01T00:05:00Z',
    });
    expect(run.measurements).toMatchObject({
      read: 10,
      created: 4,
      updated: 3,
      unchanged: 2,
      synced: 9,
      failed: 1,
      deadLettered: 1,
      durationMs: 2000,
      lagSeconds: 90,
      unmappedCodes: 3,
    });
    expect(runs[0].tags['ai.cloud.role']).toBe('fhir-sync-test');
  });

  it('sends the run metrics with low-cardinality dimensions', () => {
    const synced = select.metrics(all, METRICS.resourcesSynced);
    expect(synced.map((m) => [m.properties.resourceType, m.value]).sort()).toEqual([
      ['Observation', 7],
      ['Patient', 2],
    ]);
    for (const m of synced) expect(m.properties).toMatchObject({ trigger: 'timer', operation: 'incremental' });
    expect(select.metrics(all, METRICS.resourcesFailed).find((m) => m.properties.resourceType === 'Observation')?.value).toBe(1);
    expect(select.metrics(all, METRICS.successRate)[0].value).toBeCloseTo(0.9);
    expect(select.metrics(all, METRICS.latencyPerResourceMs)[0].value).toBeCloseTo(200);
    expect(select.metrics(all, METRICS.lagSeconds)[0].value).toBe(90);
    const runUnmapped = select.metrics(all, METRICS.unmappedCodes).find((m) => m.properties.scope === 'run');
    expect(runUnmapped?.value).toBe(3);
    // No run id among metric dimensions: each value would become its own time series.
    for (const m of select.metrics(all)) expect(m.properties.runId).toBeUndefined();
  });

  it('counts retries per side and status, and auth failures per side', () => {
    const retries = select.metrics(all, METRICS.retries);
    const ahds429 = retries.find((m) => m.properties.side === 'ahds' && m.properties.status === '429');
    expect(ahds429).toMatchObject({ value: 2, count: 2 });
    expect(retries.find((m) => m.properties.side === 'openemr' && m.properties.status === 'network')?.value).toBe(1);
    expect(select.metrics(all, METRICS.authFailures)).toEqual([expect.objectContaining({ value: 1, properties: { side: 'openemr' } })]);
    const auth = select.events(all, EVENTS.authFailure);
    expect(auth).toHaveLength(1);
    expect(props(auth[0]).side).toBe('openemr');
    expect(props(auth[0]).reason).toContain('invalid_client');
  });

  it('sends unmapped codes per system and code, the gauge and the reconcile event', () => {
    const perCode = select.metrics(all, METRICS.unmappedCodes).find((m) => m.properties.scope === 'code');
    expect(perCode).toMatchObject({ value: 3, properties: { scope: 'code', system: 'urn:openemr:local-code', code: 'GLU-X' } });
    expect(select.metrics(all, METRICS.deadLettersPending)[0].value).toBe(5);
    const rec = select.events(all, EVENTS.reconcile)[0].data.baseData;
    expect(rec.measurements).toEqual({ missingInTarget: 2, deletedInSource: 1 });
    expect(rec.properties).toMatchObject({ mode: 'report-only' });
  });

  it('sends dead letters with type, id, status and a scrubbed reason', () => {
    const dl = select.events(all, EVENTS.deadLetter).map(props);
    expect(dl).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ resourceType: 'Patient', id: 'p-1', status: '422' }),
        expect.objectContaining({ resourceType: 'Observation', id: 'o-9' }),
      ]),
    );
    const patient = dl.find((p) => p.id === 'p-1')!;
    expect(patient.reason).toContain('[redacted-pem]');
    expect(patient.reason).toContain('"family":"[redacted]"');
  });

  it('files dependencies as HTTP with name, target, result code, duration, success and side', () => {
    const deps = select.dependencies(all).map((e) => e.data.baseData);
    const emr = deps.find((d) => d.properties?.side === 'openemr');
    const ahds = deps.find((d) => d.properties?.side === 'ahds');
    expect(emr).toMatchObject({ name: 'GET /Patient', target: 'OpenEMR FHIR', resultCode: '200', success: true, type: 'Http' });
    expect(emr.duration).toBe('00:00:00.035');
    expect(ahds).toMatchObject({ name: 'POST /', target: 'AHDS FHIR', resultCode: '429', success: false });
  });

  it('correlates everything tracked through withOperation with the operation id', () => {
    const fromTraceparent = [...select.events(all).filter((e) => props(e).id !== 'o-9'), ...select.dependencies(all)];
    expect(fromTraceparent.length).toBeGreaterThanOrEqual(6);
    for (const e of fromTraceparent) {
      expect(e.tags['ai.operation.id']).toBe(TRACE_ID);
      expect(e.tags['ai.operation.parentId']).toBe(PARENT_SPAN);
    }
    const fromInvocation = select.events(all, EVENTS.deadLetter).find((e) => props(e).id === 'o-9')!;
    expect(fromInvocation.tags['ai.operation.id']).toBe(INVOCATION_ID.replace(/-/g, ''));
    expect(props(fromInvocation).operationId).toBe(INVOCATION_ID);
  });

  it('lets no token, private key, SSN or patient name through, anywhere in the bodies', () => {
    const text = capture.rawText();
    expect(text.length).toBeGreaterThan(0);
    for (const planted of [JWT, JWT.split('.')[1], 'eyJhbGciOiJSUzM4NCIs', PEM_BODY, 'BEGIN PRIVATE KEY', SSN, FAMILY, GIVEN]) {
      expect(text).not.toContain(planted);
    }
  });
});

describe('createTelemetry without a connection string', () => {
  it('returns the no-op', () => {
    expect(createTelemetry({})).toBeInstanceOf(NoopTelemetry);
    expect(createTelemetry({ connectionString: '   ' })).toBeInstanceOf(NoopTelemetry);
  });

  it('does not load applicationinsights (checked in a fresh Node process through require.cache)', () => {
    const root = path.resolve(__dirname, '../..');
    // Transpiles the TypeScript sources on the fly, then reports which SDK modules require.cache holds
    // before and after creating telemetry with a connection string (the latter proves the check sees them).
    const script = `
      const fs = require('fs'); const ts = require('typescript');
      require.extensions['.ts'] = (m, f) => m._compile(ts.transpileModule(fs.readFileSync(f, 'utf8'),
        { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } }).outputText, f);
      const sdk = () => Object.keys(require.cache).filter((k) => /node_modules[\\\\/](applicationinsights|@azure[\\\\/]monitor-opentelemetry)/.test(k)).length;
      const { createTelemetry, NoopTelemetry } = require(${JSON.stringify(path.join(root, 'src/telemetry/index.ts'))});
      const off = createTelemetry({});
      off.runCompleted({ runId: 'r', trigger: 'cli', operation: 'x', read: 0, created: 0, updated: 0, unchanged: 0, failed: 0, deadLettered: 0, durationMs: 1 });
      const before = sdk();
      createTelemetry({ connectionString: 'InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=https://127.0.0.1:9/' });
      process.stdout.write(JSON.stringify({ noop: off instanceof NoopTelemetry, before, after: sdk() }));
      process.exit(0);`;
    const out = execFileSync(process.execPath, ['-e', script], {
      cwd: root,
      env: { ...process.env, APPLICATION_INSIGHTS_NO_STATSBEAT: 'true', APPLICATIONINSIGHTS_SDKSTATS_DISABLED: 'true' },
      encoding: 'utf8',
    });
    const result = JSON.parse(out);
    expect(result.noop).toBe(true);
    expect(result.before).toBe(0);
    expect(result.after).toBeGreaterThan(0);
  });
});
