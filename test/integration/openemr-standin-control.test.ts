/**
 * OpenEMR stand-in, stateful behaviour: control API writes, the movable clock, silent lab
 * corrections, bulk export, fault injection, request counting, loading other NDJSON, and scale.
 * Each test that changes state gets its own (empty, fast) stand-in.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FhirResource, OpenEmrStandIn, startOpenEmrStandIn } from '../../stack/openemr';
import { control, entryIds, fhirGet, getAccessToken } from '../helpers/openemr-standin-client';

type Json = Record<string, any>;

const uuid = (n: number, prefix = '00000000') => `${prefix}-0000-4000-8000-${String(n).padStart(12, '0')}`;
const patient = (n: number): FhirResource => ({
  resourceType: 'Patient',
  id: uuid(n, 'aaaaaaaa'),
  name: [{ family: `Family${n}` }],
  gender: 'female',
});
const observation = (n: number, patientN: number, extra: Json = {}): FhirResource => ({
  resourceType: 'Observation',
  id: uuid(n, 'bbbbbbbb'),
  status: 'final',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] }],
  code: { coding: [{ system: 'http://loinc.org', code: '2345-7' }] },
  subject: { reference: `urn:uuid:${uuid(patientN, 'aaaaaaaa')}` },
  effectiveDateTime: '2024-03-01T10:00:00-05:00',
  valueQuantity: { value: 100 + n, unit: 'mg/dL', system: 'http://unitsofmeasure.org', code: 'mg/dL' },
  ...extra,
});

async function withStandIn(
  fn: (s: OpenEmrStandIn, token: string) => Promise<void>,
  options: Parameters<typeof startOpenEmrStandIn>[0] = {},
): Promise<void> {
  const standIn = await startOpenEmrStandIn({ dataDir: null, ...options });
  try {
    await fn(standIn, await getAccessToken(standIn));
  } finally {
    await standIn.close();
  }
}

describe('control API writes', () => {
  test('PUT creates a resource stamped with the server clock, versionId "1" and references resolved', () =>
    withStandIn(async (s, token) => {
      expect((await control(s, 'PUT', `/Patient/${uuid(1, 'aaaaaaaa')}`, patient(1))).status).toBe(201);
      const put = await control(s, 'PUT', `/Observation/${uuid(1, 'bbbbbbbb')}`, observation(1, 1));
      expect(put.status).toBe(201);
      const read = await fhirGet(s, `/Observation/${uuid(1, 'bbbbbbbb')}`, token);
      expect(read.body.meta.versionId).toBe('1');
      expect(Date.parse(read.body.meta.lastUpdated)).toBe(Math.floor(s.store.now() / 1000) * 1000);
      expect(read.body.meta.lastUpdated).toMatch(/-05:00$/);
      expect(read.body.subject).toEqual({ reference: `Patient/${uuid(1, 'aaaaaaaa')}` });
    }));

  test('an update moves lastUpdated to the current clock but versionId stays "1"', () =>
    withStandIn(async (s, token) => {
      await control(s, 'PUT', `/Patient/${uuid(1, 'aaaaaaaa')}`, patient(1));
      const first = (await fhirGet(s, `/Patient/${uuid(1, 'aaaaaaaa')}`, token)).body;
      await control(s, 'POST', '/clock', { advanceSeconds: 3600 });
      const update = await control(s, 'PUT', `/Patient/${uuid(1, 'aaaaaaaa')}`, { ...patient(1), gender: 'male' });
      expect(update.status).toBe(200);
      // An hour later the first token has expired (300 s): fetch a new one.
      const second = (await fhirGet(s, `/Patient/${uuid(1, 'aaaaaaaa')}`, await getAccessToken(s))).body;
      expect(second.meta.versionId).toBe('1');
      expect(Date.parse(second.meta.lastUpdated) - Date.parse(first.meta.lastUpdated)).toBeGreaterThanOrEqual(3600 * 1000);
      expect(second.gender).toBe('male');
    }));

  test('DELETE is a hard delete: read gives 404 [] and searches simply lack it', () =>
    withStandIn(async (s, token) => {
      await control(s, 'PUT', `/Patient/${uuid(1, 'aaaaaaaa')}`, patient(1));
      await control(s, 'PUT', `/Patient/${uuid(2, 'aaaaaaaa')}`, patient(2));
      expect((await control(s, 'DELETE', `/Patient/${uuid(1, 'aaaaaaaa')}`)).status).toBe(200);
      const read = await fhirGet(s, `/Patient/${uuid(1, 'aaaaaaaa')}`, token);
      expect(read.status).toBe(404);
      expect(read.text).toBe('[]');
      expect(entryIds((await fhirGet(s, '/Patient', token)).body)).toEqual([uuid(2, 'aaaaaaaa')]);
      expect(entryIds((await fhirGet(s, '/Patient?_lastUpdated=ge2000-01-01', token)).body)).toEqual([uuid(2, 'aaaaaaaa')]);
    }));

  test('lab correction keeps lastUpdated, so _lastUpdated searches cannot see it', () =>
    withStandIn(async (s, firstToken) => {
      let token = firstToken;
      await control(s, 'PUT', `/Patient/${uuid(1, 'aaaaaaaa')}`, patient(1));
      await control(s, 'PUT', `/Observation/${uuid(1, 'bbbbbbbb')}`, observation(1, 1));
      const before = (await fhirGet(s, `/Observation/${uuid(1, 'bbbbbbbb')}`, token)).body;
      await control(s, 'POST', '/clock', { advanceSeconds: 86400 });
      token = await getAccessToken(s);
      const since = new Date(s.store.now() - 1000).toISOString().slice(0, 19) + 'Z';
      const corrected = await control(s, 'POST', `/lab-correction/${uuid(1, 'bbbbbbbb')}`, { valueQuantity: { value: 99, unit: 'mg/dL' } });
      expect(corrected.status).toBe(200);
      const after = (await fhirGet(s, `/Observation/${uuid(1, 'bbbbbbbb')}`, token)).body;
      expect(after.valueQuantity.value).toBe(99);
      expect(after.meta).toEqual(before.meta);
      const changedSince = await fhirGet(s, `/Observation?_lastUpdated=gt${since}`, token);
      expect(changedSince.body.total).toBe(0);
    }));

  test('lab correction without a body marks the result corrected', () =>
    withStandIn(async (s, token) => {
      s.store.put(observation(1, 1));
      s.store.labCorrection(uuid(1, 'bbbbbbbb'));
      expect((await fhirGet(s, `/Observation/${uuid(1, 'bbbbbbbb')}`, token)).body.status).toBe('corrected');
    }));

  test('the clock moves lastUpdated of new writes, which Patient _sort=_lastUpdated pages by', () =>
    withStandIn(async (s) => {
      // Ids descending while time ascends, so only lastUpdated can produce the expected order.
      for (let n = 5; n >= 1; n--) {
        s.store.put(patient(n));
        s.store.advanceClock(60);
      }
      const token = await getAccessToken(s);
      const page1 = await fhirGet(s, '/Patient?_sort=_lastUpdated&_count=3&_offset=0', token);
      const page2 = await fhirGet(s, '/Patient?_sort=_lastUpdated&_count=3&_offset=3', token);
      expect([...entryIds(page1.body), ...entryIds(page2.body)]).toEqual([5, 4, 3, 2, 1].map((n) => uuid(n, 'aaaaaaaa')));
      const stamps = [...page1.body.entry, ...page2.body.entry].map((e: Json) => Date.parse(e.resource.meta.lastUpdated));
      expect(stamps).toEqual([...stamps].sort((a, b) => a - b));
    }));

  test('Patient _count is capped at 200', () =>
    withStandIn(async (s, token) => {
      s.store.importResources(Array.from({ length: 250 }, (_, i) => patient(i)));
      const res = await fhirGet(s, '/Patient?_count=500', token);
      expect(res.body.total).toBe(200);
      expect((await fhirGet(s, '/Patient', token)).body.total).toBe(250);
    }));

  test('a newly registered client can be enabled through the control API only if it exists', () =>
    withStandIn(async (s) => {
      expect((await control(s, 'POST', '/clients/nobody/enable')).status).toBe(404);
    }));
});

describe('fault injection', () => {
  test('fault profile injects 503 with Retry-After', () =>
    withStandIn(async (s, token) => {
      await control(s, 'PUT', '/faults', { rates: { status503: 1 }, retryAfterMs: 2500 });
      const res = await fhirGet(s, '/Patient', token);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('3');
      expect(res.headers.get('x-ms-retry-after-ms')).toBe('2500');
      expect(res.body).toEqual({ error: 'An error occurred', message: 'Service Unavailable', code: 0 });
      await control(s, 'PUT', '/faults', {});
      expect((await fhirGet(s, '/Patient', token)).status).toBe(200);
    }));

  test('fault profile injects 429 with Retry-After on the token endpoint too', () =>
    withStandIn(async (s) => {
      s.store.setFaults({ rates: { status429: 1 } });
      const res = await fetch(s.tokenUrl, { method: 'POST', body: 'grant_type=client_credentials' });
      expect(res.status).toBe(429);
      expect(res.headers.get('retry-after')).toBe('1');
    }));

  test('a 500 fault carries no Retry-After', () =>
    withStandIn(async (s, token) => {
      s.store.setFaults({ rates: { status500: 1 } });
      const res = await fhirGet(s, '/Patient', token);
      expect(res.status).toBe(500);
      expect(res.headers.get('retry-after')).toBeNull();
    }));

  test('connection reset fault', () =>
    withStandIn(async (s, token) => {
      s.store.setFaults({ rates: { reset: 1 } });
      await expect(fhirGet(s, '/Patient', token)).rejects.toThrow();
      expect(s.faults.injected.reset).toBe(1);
    }));

  test('exempt paths are never faulted', () =>
    withStandIn(async (s, token) => {
      await control(s, 'PUT', '/faults', { rates: { status503: 1 }, exemptPaths: ['/metadata$'] });
      expect((await fhirGet(s, '/metadata')).status).toBe(200);
      expect((await fhirGet(s, '/Patient', token)).status).toBe(503);
    }));

  test('the same seed gives the same fault sequence', () =>
    withStandIn(async (s, token) => {
      const run = async () => {
        s.store.setFaults({ seed: 7, rates: { status503: 0.5 } });
        const statuses: number[] = [];
        for (let i = 0; i < 12; i++) statuses.push((await fhirGet(s, '/Patient', token)).status);
        return statuses;
      };
      const first = await run();
      expect(first).toContain(503);
      expect(first).toContain(200);
      expect(await run()).toEqual(first);
    }));

  test('the control API is never faulted', () =>
    withStandIn(async (s) => {
      s.store.setFaults({ rates: { status503: 1 } });
      expect((await control(s, 'GET', '/stats')).status).toBe(200);
    }));
});

describe('request statistics', () => {
  test('stats count requests per route, not control calls, and reset', () =>
    withStandIn(async (s, token) => {
      // getAccessToken made one token request.
      expect(s.stats()).toEqual({ requests: 1, byRoute: { 'POST /oauth2/token': 1 } });
      await fhirGet(s, '/Patient', token);
      await fhirGet(s, '/Patient?_count=1', token);
      await fhirGet(s, `/Observation/${uuid(1)}`, token);
      await control(s, 'PUT', `/Patient/${uuid(1, 'aaaaaaaa')}`, patient(1));
      const stats = (await control(s, 'GET', '/stats')).body;
      expect(stats.requests).toBe(4);
      expect(stats.byRoute).toEqual({ 'POST /oauth2/token': 1, 'GET /fhir/Patient': 2, 'GET /fhir/Observation/{id}': 1 });
      s.resetStats();
      expect(s.stats()).toEqual({ requests: 0, byRoute: {} });
    }));

  test('faulted requests are counted under their route', () =>
    withStandIn(async (s, token) => {
      s.resetStats();
      s.store.setFaults({ rates: { status503: 1 } });
      await fhirGet(s, '/Observation', token);
      expect(s.stats().byRoute).toEqual({ 'GET /fhir/Observation': 1 });
    }));
});

describe('loading data', () => {
  test('any directory of Bulk FHIR NDJSON loads, other files are ignored', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'openemr-standin-'));
    try {
      fs.writeFileSync(path.join(dir, 'Patient.ndjson'), JSON.stringify(patient(1)) + '\n');
      const obs = [observation(1, 1, { issued: '2024-03-02T08:00:00.123Z' }), observation(2, 1)];
      fs.writeFileSync(path.join(dir, 'Observation.000.ndjson'), obs.map((o) => JSON.stringify(o)).join('\n') + '\n');
      fs.writeFileSync(path.join(dir, 'Flag.ndjson'), JSON.stringify({ resourceType: 'Flag', id: uuid(9) }) + '\n');
      fs.writeFileSync(path.join(dir, 'README.md'), 'not data');
      await withStandIn(
        async (s, token) => {
          expect(s.loadReport?.loaded).toEqual({
            Patient: 1,
            Observation: 2,
            Encounter: 0,
            Condition: 0,
            DiagnosticReport: 0,
            DocumentReference: 0,
            Immunization: 0,
            Procedure: 0,
            MedicationRequest: 0,
            AllergyIntolerance: 0,
          });
          const first = (await fhirGet(s, `/Observation/${uuid(1, 'bbbbbbbb')}`, token)).body;
          expect(first.meta.lastUpdated).toBe('2024-03-02T03:00:00-05:00'); // from issued
          expect(first.subject.reference).toBe(`Patient/${uuid(1, 'aaaaaaaa')}`);
          const second = (await fhirGet(s, `/Observation/${uuid(2, 'bbbbbbbb')}`, token)).body;
          expect(second.meta.lastUpdated).toBe('2024-03-01T10:00:00-05:00'); // no issued: effectiveDateTime
        },
        { dataDir: dir },
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('utcOffset changes the offset every emitted timestamp carries', () =>
    withStandIn(
      async (s, token) => {
        s.store.importResources([observation(1, 1, { issued: '2024-03-02T08:00:00Z' })]);
        expect((await fhirGet(s, `/Observation/${uuid(1, 'bbbbbbbb')}`, token)).body.meta.lastUpdated).toBe('2024-03-02T10:00:00+02:00');
      },
      { utcOffset: '+02:00' },
    ));

  test('200k synthetic Observations answer a one-sided _lastUpdated query exactly', () =>
    withStandIn(async (s, token) => {
      const total = 200_000;
      const base = Date.parse('2020-01-01T00:00:00Z') / 1000;
      function* generate() {
        for (let n = 0; n < total; n++) {
          // One Observation per minute, spread over 50 patients.
          yield observation(n, n % 50, { issued: new Date((base + n * 60) * 1000).toISOString() });
        }
      }
      s.store.importResources(Array.from({ length: 50 }, (_, i) => patient(i)));
      expect(s.store.importResources(generate())).toBe(total);
      // After minute total-101: exactly the last 100 Observations, in row order.
      const lo = new Date((base + (total - 101) * 60) * 1000).toISOString().replace('.000Z', 'Z');
      const res = await fhirGet(s, `/Observation?_lastUpdated=gt${lo}`, token);
      expect(res.body.total).toBe(100);
      expect(entryIds(res.body)).toEqual(Array.from({ length: 100 }, (_, i) => uuid(total - 100 + i, 'bbbbbbbb')));
      const onePatient = await fhirGet(s, `/Observation?patient=${uuid(7, 'aaaaaaaa')}&_lastUpdated=gt${lo}`, token);
      expect(onePatient.body.total).toBe(2);
    }));
});
