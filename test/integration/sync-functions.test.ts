import { syncObservationHandler } from '../../functions/sync-observation';
import { syncPatientHandler } from '../../functions/sync-patient';
import { syncPatientEverythingHandler } from '../../functions/sync-patient-everything';
import { startStack, type Stack } from '../../stack';
import type { SupportedType } from '../../stack/openemr';
import { loadConfig } from '../../src/config/load';
import { carriedReferences, specOf } from '../../src/sync/resource-types';
import { referenceTargets } from '../../src/sync/sync-service';
import { RecordingTelemetry, type DependencyCall } from '../../src/telemetry/telemetry';
import { invoke, runSummaryOf, useStack } from '../helpers/functions';

let stack: Stack;
let patientId: string;
let observationId: string;

beforeAll(async () => {
  stack = await startStack({ azurite: false });
  patientId = stack.openemr.store.ids('Patient')[0]!;
  const observation = stack.openemr.store
    .ids('Observation')
    .map((id) => stack.openemr.store.get('Observation', id)!)
    .find((o: any) => String(o.subject?.reference).endsWith(patientId))!;
  observationId = (observation as { id: string }).id;
});
afterAll(() => stack?.close());
beforeEach(() => {
  stack.openemr.faults.configure({});
  stack.ahds.faults.configure({});
  useStack(stack);
});

describe('sync one patient', () => {
  test('creates the Patient in AHDS and answers a JSON summary', async () => {
    const answer = await invoke(syncPatientHandler, { url: `sync/patients/${patientId}`, params: { id: patientId } });
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ operation: 'syncPatient', status: 'ok', read: 1, failed: 0 });
    expect(answer.json.created + answer.json.updated + answer.json.unchanged).toBe(1);
    expect(await stack.ahds.read('Patient', patientId)).toBeDefined();
  });

  test('re-syncing an unchanged Patient creates no new version and counts it unchanged', async () => {
    await invoke(syncPatientHandler, { url: `sync/patients/${patientId}`, params: { id: patientId } });
    const versions = stack.ahds.versionCount('Patient', patientId);
    const again = await invoke(syncPatientHandler, { url: `sync/patients/${patientId}`, params: { id: patientId } });
    expect(again.json).toMatchObject({ unchanged: 1, created: 0, updated: 0 });
    expect(stack.ahds.versionCount('Patient', patientId)).toBe(versions);
  });

  test('an unknown id answers 404 with an OperationOutcome', async () => {
    const id = '00000000-0000-4000-8000-000000000000';
    const answer = await invoke(syncPatientHandler, { url: `sync/patients/${id}`, params: { id } });
    expect(answer.status).toBe(404);
    expect(answer.json).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'not-found' }] });
  });

  test('a malformed id answers 400 with an OperationOutcome before any outbound call', async () => {
    stack.openemr.resetStats();
    const id = 'bad id/../x';
    const answer = await invoke(syncPatientHandler, { url: 'sync/patients/x', params: { id } });
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'invalid' }] });
    expect(stack.openemr.stats().requests).toBe(0);
  });

  test('OpenEMR down answers 503 naming OpenEMR, without a stack trace', async () => {
    useStack(stack, { OPENEMR_BASE_URL: 'http://127.0.0.1:9', RETRY_MAX_ATTEMPTS: '2' });
    const answer = await invoke(syncPatientHandler, { url: `sync/patients/${patientId}`, params: { id: patientId } });
    expect(answer.status).toBe(503);
    const text = answer.json.issue[0].diagnostics as string;
    expect(text).toMatch(/^OpenEMR is unavailable/);
    expect(text).not.toMatch(/\n\s+at /);
  });

  test('AHDS throttling with Retry-After is waited out and the write succeeds', async () => {
    stack.ahds.faults.configure({ seed: 7, rates: { status429: 0.5 }, retryAfterMs: 50, exemptPaths: [/metadata/] });
    const answer = await invoke(syncPatientHandler, { url: `sync/patients/${patientId}`, params: { id: patientId } });
    expect(answer.status).toBe(200);
    expect(answer.json.failed).toBe(0);
    expect(stack.ahds.faults.injected['429']).toBeGreaterThan(0);
  });

  test('AHDS throttling that never ends answers 503 naming the AHDS FHIR service', async () => {
    useStack(stack, { RETRY_MAX_ATTEMPTS: '3' });
    stack.ahds.faults.configure({ rates: { status429: 1 }, retryAfterMs: 10 });
    const answer = await invoke(syncPatientHandler, { url: `sync/patients/${patientId}`, params: { id: patientId } });
    expect(answer.status).toBe(503);
    expect(answer.headers).toMatchObject({ 'retry-after': expect.any(String) });
    expect(answer.json.issue[0].diagnostics).toMatch(/AHDS FHIR service is unavailable.*429/);
  });
});

test('everything one invocation reports carries its operation id, dependency calls included', async () => {
  const telemetry = new RecordingTelemetry();
  useStack(stack, {}, { telemetry });
  await invoke(syncPatientHandler, { url: `sync/patients/${patientId}`, params: { id: patientId } });
  const kinds = new Set(telemetry.calls.map((c) => c.kind));
  expect(kinds).toEqual(new Set(['dependency', 'run']));
  const operations = new Set(telemetry.calls.map((c) => c.operationId));
  expect(operations.size).toBe(1);
  expect([...operations][0]).toMatch(/^test-/);
});

describe('sync one observation', () => {
  test('writes the Observation with its subject pointing at the Patient in AHDS', async () => {
    const answer = await invoke(syncObservationHandler, { url: `sync/observations/${observationId}`, params: { id: observationId } });
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ operation: 'syncObservation', status: 'ok', failed: 0 });
    const stored = (await stack.ahds.read('Observation', observationId)) as { subject: { reference: string } };
    expect(stored.subject.reference).toBe(`Patient/${patientId}`);
    expect(await stack.ahds.read('Patient', patientId)).toBeDefined();
  });

  test('an unknown Observation id answers 404', async () => {
    const id = '00000000-0000-4000-8000-00000000beef';
    const answer = await invoke(syncObservationHandler, { url: `sync/observations/${id}`, params: { id } });
    expect(answer.status).toBe(404);
  });
});

describe('sync one patient with all observations', () => {
  test('writes the Patient, every resource of each carried type of it and the directory rows those point at', async () => {
    const { resourceTypes } = loadConfig(stack.env).sync;
    const store = stack.openemr.store;
    const get = (type: string, id: string) => store.get(type as SupportedType, id) as any;
    // The element that names the Patient: subject, or patient (Immunization, AllergyIntolerance).
    const ofPatient = (type: string) => {
      const element = specOf(type).references.find((r) => r.type === 'Patient')!.element;
      return store.ids(type as SupportedType).filter((id) => referenceTargets(get(type, id), element, 'Patient').includes(patientId));
    };
    const patientScoped = resourceTypes.filter((t) => specOf(t).read.patientScoped);
    // The directory (Practitioner, Organization, Location) is read whole by a run, but for one
    // Patient only the rows its resources point at, and what those point at (a Location's Organization).
    const directory = new Set<string>();
    let frontier = patientScoped.flatMap((t) => ofPatient(t).map((id) => get(t, id)));
    while (frontier.length > 0) {
      const next: any[] = [];
      for (const r of frontier)
        for (const ref of carriedReferences(r.resourceType, resourceTypes).filter(
          (x) => !patientScoped.includes(x.type) && x.type !== 'Patient',
        ))
          for (const id of referenceTargets(r, ref.element, ref.type))
            if (!directory.has(`${ref.type}/${id}`)) {
              directory.add(`${ref.type}/${id}`);
              next.push(get(ref.type, id));
            }
      frontier = next;
    }
    const directoryCount = (type: string) => [...directory].filter((key) => key.startsWith(`${type}/`)).length;
    const expected = Object.fromEntries(
      resourceTypes.map((t) => [t, t === 'Patient' ? 1 : patientScoped.includes(t) ? ofPatient(t).length : directoryCount(t)]),
    );
    // The sample Patient's Encounters point at the directory (data/openemr-directory/links.json).
    expect(directoryCount('Practitioner')).toBeGreaterThan(0);
    expect(directoryCount('Location')).toBeGreaterThan(0);
    const answer = await invoke(syncPatientEverythingHandler, { url: `sync/patients/${patientId}/everything`, params: { id: patientId } });
    expect(answer.status).toBe(200);
    expect(answer.json.read).toBe(Object.values(expected).reduce((a, b) => a + b, 0));
    expect(answer.json.failed).toBe(0);
    const written = Object.fromEntries(
      Object.entries(answer.json.byType as Record<string, Record<string, number>>).map(([t, c]) => [
        t,
        c.created! + c.updated! + c.unchanged!,
      ]),
    );
    expect(written).toEqual(Object.fromEntries(Object.entries(expected).filter(([, n]) => n > 0)));
  });

  test('an OpenEMR token that expires in the middle of a run is renewed and the run completes', async () => {
    const telemetry = new RecordingTelemetry();
    // Tokens of 120 s: the connector holds this one as good for another minute when the server's
    // clock passes its expiry, so the next read meets a 401 in the middle of the run.
    stack.openemr.faults.configure({ tokenLifetimeSeconds: 120 });
    useStack(stack, {}, { telemetry });
    const first = await invoke(syncPatientHandler, { url: `sync/patients/${patientId}`, params: { id: patientId } });
    expect(first.status).toBe(200);
    stack.openemr.store.advanceClock(150);
    const answer = await invoke(syncPatientEverythingHandler, { url: `sync/patients/${patientId}/everything`, params: { id: patientId } });
    expect(answer.status).toBe(200);
    expect(answer.json.failed).toBe(0);
    const calls = telemetry.calls.filter((c) => c.kind === 'dependency').map((c) => c.data as DependencyCall);
    const refused = calls.findIndex((c) => c.side === 'openemr' && c.resultCode === 401);
    expect(refused).toBeGreaterThan(-1);
    // Two token requests (the discovery GET before the first is not one).
    expect(calls.filter((c) => c.target === 'OpenEMR OAuth2' && c.name.startsWith('POST') && c.resultCode === 200)).toHaveLength(2);
    expect(calls.slice(refused + 1).some((c) => c.target === 'OpenEMR FHIR' && c.resultCode === 200)).toBe(true);
  });

  test('when the Patient fails, its Observations are not written and the answer says why', async () => {
    const otherId = stack.openemr.store.ids('Patient')[1]!;
    const original = stack.openemr.store.get('Patient', otherId) as object;
    // A birth date AHDS refuses (a primitive format of the resource's own element): the connector refuses it first.
    stack.openemr.store.put({ ...original, birthDate: '03/02/1980' } as never);
    try {
      const answer = await invoke(syncPatientEverythingHandler, { url: `sync/patients/${otherId}/everything`, params: { id: otherId } });
      expect(answer.status).toBe(422);
      expect(answer.json.resourceType).toBe('OperationOutcome');
      expect(answer.json.issue[0]).toMatchObject({
        severity: 'error',
        code: 'processing',
        diagnostics: expect.stringMatching(/could not be written/),
      });
      expect(answer.json.issue[1].diagnostics).toMatch(
        new RegExp(`^Patient/${otherId} \\(map\\): FHIR validation failed: Patient\\.birthDate`),
      );
      answer.json = runSummaryOf(answer.json);
      expect(answer.json.status).toBe('failed');
      // Its resources of every carried type are held back, as a full sync holds back a failed Patient's.
      expect(answer.json.message).toMatch(
        new RegExp(
          `^Patient/${otherId} could not be written, so its (\\d+ \\w+\\(s\\), )*\\d+ Observation\\(s\\)(, \\d+ \\w+\\(s\\))* were not`,
        ),
      );
      expect(answer.json.failures[0]).toMatchObject({ resourceType: 'Patient', id: otherId, stage: 'map' });
      expect(answer.json.byType.Observation.failed).toBeGreaterThan(0);
      expect(answer.json.failed).toBe(answer.json.read);
      expect(answer.json.failures.filter((f: { reason: string }) => /its Patient\//.test(f.reason))).toHaveLength(
        Math.min(99, answer.json.read - 1),
      );
    } finally {
      stack.openemr.store.put(original as never);
    }
    expect(await stack.ahds.read('Patient', otherId)).toBeUndefined();
    expect((await stack.ahds.snapshot('Observation')).filter((o: any) => o.subject?.reference === `Patient/${otherId}`)).toHaveLength(0);
  });

  // Every entry of a bundle answered 403 (a reader-only identity, BundleBatchTests' readonly case):
  // an outage of the connector's role, not hundreds of dead letters.
  test('an identity without the writer role fails the sync with one sentence and dead-letters nothing', async () => {
    const otherId = stack.openemr.store.ids('Patient')[2]!;
    stack.ahds.setWriterRole(stack.entra.clientId, false);
    try {
      const answer = await invoke(syncPatientEverythingHandler, { url: `sync/patients/${otherId}/everything`, params: { id: otherId } });
      expect(answer.status).toBe(502);
      expect(JSON.stringify(answer.json)).toMatch(
        /refused every write of a bundle \(403\): give the connector's identity the FHIR Data Writer role/,
      );
    } finally {
      stack.ahds.setWriterRole(stack.entra.clientId, true);
    }
    expect(await stack.ahds.read('Patient', otherId)).toBeUndefined();
  });
});

describe('configuration', () => {
  test('a client-secret-only OpenEMR configuration is rejected with a clear message', async () => {
    useStack(stack, { OPENEMR_PRIVATE_KEY: '', OPENEMR_CLIENT_SECRET: 'from-an-old-guide' });
    const answer = await invoke(syncPatientHandler, { url: `sync/patients/${patientId}`, params: { id: patientId } });
    expect(answer.status).toBe(503);
    expect(answer.json.issue[0].diagnostics).toMatch(
      /^Not configured: set OPENEMR_CLIENT_SECRET\. Setting OPENEMR_CLIENT_SECRET cannot be used: OpenEMR accepts only a signed JWT assertion/,
    );
    expect(JSON.stringify(answer.json)).not.toContain('from-an-old-guide');
  });
});
