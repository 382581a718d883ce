/**
 * OpenEMR stand-in, bulk export as src/RestControllers/FHIR/Operations/FhirOperationExportRestController.php
 * runs it: synchronously inside the kick-off, under a time budget, Observation before Patient.
 * Each test gets its own empty stand-in.
 */
import { FhirResource, OpenEmrStandIn, startOpenEmrStandIn } from '../../stack/openemr';
import { control, fhirGet, getAccessToken, HttpAnswer } from '../helpers/openemr-standin-client';

type Json = Record<string, any>;
type Options = Parameters<typeof startOpenEmrStandIn>[0];

const uuid = (n: number, prefix: string) => `${prefix}-0000-4000-8000-${String(n).padStart(12, '0')}`;
const patient = (n: number): FhirResource => ({ resourceType: 'Patient', id: uuid(n, 'aaaaaaaa'), name: [{ family: `Family${n}` }] });
const observation = (n: number, patientN: number): FhirResource => ({
  resourceType: 'Observation',
  id: uuid(n, 'bbbbbbbb'),
  status: 'final',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] }],
  code: { coding: [{ system: 'http://loinc.org', code: '2345-7' }] },
  subject: { reference: `Patient/${uuid(patientN, 'aaaaaaaa')}` },
  effectiveDateTime: '2024-03-01T10:00:00-05:00',
  valueQuantity: { value: 100 + n, unit: 'mg/dL', system: 'http://unitsofmeasure.org', code: 'mg/dL' },
});

const EXPORT_HEADERS = { accept: 'application/fhir+json', prefer: 'respond-async' };

async function withStandIn(fn: (s: OpenEmrStandIn, token: string) => Promise<void>, options: Options = {}): Promise<void> {
  const s = await startOpenEmrStandIn({ dataDir: null, ...options });
  try {
    for (let n = 1; n <= 2; n++) s.store.put(patient(n));
    for (let n = 1; n <= 3; n++) s.store.put(observation(n, 1 + (n % 2)));
    await fn(s, await getAccessToken(s));
  } finally {
    await s.close();
  }
}

async function exportStatus(s: OpenEmrStandIn, token: string, pathAndQuery: string): Promise<{ kick: HttpAnswer; status: HttpAnswer }> {
  const kick = await fhirGet(s, pathAndQuery, token, EXPORT_HEADERS);
  expect(kick.status).toBe(202);
  return { kick, status: await fhirGet(s, kick.headers.get('content-location') as string, token) };
}

const idsOf = (text: string) =>
  text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l).id as string);

describe('bulk export', () => {
  // :217 processResourceExportForJob before the 202; route order puts Observation (:493) before
  // Patient (:578); :286 transactionTime is the job's \DateTime; the status body has no `deleted`.
  test('export runs in the kick-off, Observation before Patient, with a PHP DateTime transactionTime and no deleted key', () =>
    withStandIn(async (s, token) => {
      const { kick, status } = await exportStatus(s, token, '/$export');
      expect(kick.headers.get('content-location')).toMatch(/\/apis\/default\/fhir\/\$bulkdata-status\?job=[0-9a-f-]{36}$/);
      expect(status.status).toBe(200);
      expect(status.body).toEqual({
        transactionTime: { date: expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.000000$/), timezone_type: 1, timezone: '-05:00' },
        request: '/apis/default/fhir/$export',
        requiresAccessToken: true,
        output: [
          { url: expect.stringMatching(/\/apis\/default\/fhir\/Binary\/\d+$/), type: 'Observation' },
          { url: expect.stringMatching(/\/apis\/default\/fhir\/Binary\/\d+$/), type: 'Patient' },
        ],
        error: [],
      });
      const files = await Promise.all(status.body.output.map((o: Json) => fhirGet(s, o.url, token)));
      expect(files.map((f) => f.headers.get('content-type'))).toEqual(['application/fhir+ndjson', 'application/fhir+ndjson']);
      expect(files.map((f) => idsOf(f.text).length)).toEqual([3, 2]);
    }));

  // :178 `$type = $exportParams['type']`; `_type` is never read (openemr#8668).
  test('type= chooses the exported types and _type is ignored', () =>
    withStandIn(async (s, token) => {
      const typed = await exportStatus(s, token, '/$export?type=Patient');
      expect(typed.status.body.output.map((o: Json) => o.type)).toEqual(['Patient']);
      const underscored = await exportStatus(s, token, '/Patient/$export?_type=Patient');
      expect(underscored.status.body.output.map((o: Json) => o.type)).toEqual(['Observation', 'Patient']);
    }));

  // getResourcesForRequest: a requested type the token cannot read is an AccessDeniedException, 401.
  test('type= naming a type the token cannot read is 401 with an OperationOutcome', () =>
    withStandIn(async (s) => {
      const token = await getAccessToken(s, 'system/Patient.read system/*.$export system/*.$bulkdata-status');
      const res = await fhirGet(s, '/$export?type=Observation', token, EXPORT_HEADERS);
      expect(res.status).toBe(401);
      expect(res.body.resourceType).toBe('OperationOutcome');
      const onlyPatients = await exportStatus(s, token, '/$export');
      expect(onlyPatients.status.body.output.map((o: Json) => o.type)).toEqual(['Patient']);
    }));

  // :408-410 two-minute budget; ExportWillShutdownException gives the running type an error file
  // (:451-459, "Export process timed out" :695) and every later type an inline OperationOutcome (:423-426).
  test('a type cut off by the time budget goes to error[] as "Export process timed out", later types fail at once', () =>
    withStandIn(
      async (s, token) => {
        // Observation costs 30 ms, Patient 20 ms: Patient is cut off.
        const late = await exportStatus(s, token, '/$export');
        expect(late.status.body.output.map((o: Json) => o.type)).toEqual(['Observation']);
        expect(late.status.body.error).toEqual([{ url: expect.stringMatching(/\/Binary\/\d+$/), type: 'OperationOutcome' }]);
        const file = await fhirGet(s, late.status.body.error[0].url, token);
        expect(JSON.parse(file.text.trim())).toEqual({
          id: expect.any(String),
          issue: [{ severity: 'error', code: 'processing', details: { text: 'Export process timed out' } }],
          resourceType: 'OperationOutcome',
        });
        // A budget smaller than the Observations: both types fail, Patient without a file.
        await control(s, 'PUT', '/export-settings', { timeBudgetMs: 20 });
        const early = await exportStatus(s, token, '/$export');
        expect(early.status.body.output).toEqual([]);
        expect(early.status.body.error).toEqual([
          { url: expect.stringMatching(/\/Binary\/\d+$/), type: 'OperationOutcome' },
          {
            id: expect.any(String),
            issue: [{ severity: 'error', code: 'processing', details: { text: 'Export process timed out' } }],
            resourceType: 'OperationOutcome',
          },
        ]);
      },
      { exportTimeBudgetMs: 40, exportMsPerResource: 10 },
    ));

  // :49 MAX_DOCUMENT_ACCESS_TIME = "PT1H"; FhirDocumentRestController::downloadDocument :111-125.
  test('Binary files expire an hour after the export and then answer 404 with an empty body', () =>
    withStandIn(async (s, token) => {
      const { status } = await exportStatus(s, token, '/$export');
      const url = status.body.output[0].url as string;
      expect((await fhirGet(s, url, token)).status).toBe(200);
      s.store.advanceClock(3599);
      expect((await fhirGet(s, url, await getAccessToken(s))).status).toBe(200);
      s.store.advanceClock(1);
      const gone = await fhirGet(s, url, await getAccessToken(s));
      expect(gone.status).toBe(404);
      expect(gone.text).toBe('');
    }));

  // validateHeaders :562-567 compares with !==.
  test('Accept and Prefer must be exactly application/fhir+json and respond-async', () =>
    withStandIn(async (s, token) => {
      for (const headers of <Array<Record<string, string>>>[
        { prefer: 'respond-async' },
        { accept: 'application/fhir+json, */*', prefer: 'respond-async' },
        { accept: 'application/fhir+json', prefer: 'respond-async, wait=10' },
        { accept: 'application/fhir+json' },
      ]) {
        const res = await fhirGet(s, '/$export', token, headers);
        expect([JSON.stringify(headers), res.status, res.body.resourceType]).toEqual([JSON.stringify(headers), 400, 'OperationOutcome']);
      }
    }));

  test('export needs the system/*.$export scope (401 without it)', () =>
    withStandIn(async (s) => {
      const token = await getAccessToken(s, 'system/Patient.rs');
      expect((await fhirGet(s, '/$export', token, EXPORT_HEADERS)).status).toBe(401);
    }));

  // FhirBulkExportDomainResourceTrait.php:71-73: _lastUpdated >= _since, epoch by default.
  test('_since filters on lastUpdated, and a NULL-dated row is never exported, not even without _since', () =>
    withStandIn(async (s, token) => {
      s.store.put(observation(9, 1), { lastUpdated: null });
      const all = await exportStatus(s, token, '/$export?type=Observation');
      const ids = idsOf((await fhirGet(s, all.status.body.output[0].url, token)).text);
      expect(ids).toHaveLength(3);
      expect(ids).not.toContain(uuid(9, 'bbbbbbbb'));
      s.store.advanceClock(60);
      const since = new Date(s.store.now()).toISOString().slice(0, 19) + 'Z';
      s.store.put(observation(1, 1));
      const fresh = await getAccessToken(s);
      const recent = await exportStatus(s, fresh, `/$export?type=Observation&_since=${encodeURIComponent(since)}`);
      expect(idsOf((await fhirGet(s, recent.status.body.output[0].url, fresh)).text)).toEqual([uuid(1, 'bbbbbbbb')]);
    }));

  // 7.0.2 FhirOperationExportRestController.php:107 hands the raw _since to a \DateTime parameter:
  // an uncaught TypeError, HTTP 500 (openemr#7746, fixed in 7.0.2.2).
  test('_since is a 500 on 7.0.2 and works on 7.0.3', async () => {
    for (const [version, expected] of [
      ['7.0.2', 500],
      ['7.0.3', 202],
    ] as const) {
      await withStandIn(
        async (s, token) => {
          const res = await fhirGet(s, '/$export?_since=2020-01-01T00:00:00Z', token, EXPORT_HEADERS);
          expect([version, res.status]).toEqual([version, expected]);
          expect((await fhirGet(s, '/$export', token, EXPORT_HEADERS)).status).toBe(202);
        },
        { version },
      );
    }
  });

  test('export status can answer 202 with X-Progress before completing', () =>
    withStandIn(
      async (s, token) => {
        const kick = await fhirGet(s, '/$export', token, EXPORT_HEADERS);
        const url = kick.headers.get('content-location') as string;
        const first = await fhirGet(s, url, token);
        expect(first.status).toBe(202);
        expect(first.headers.get('x-progress')).toBeTruthy();
        expect((await fhirGet(s, url, token)).status).toBe(200);
      },
      { exportPendingPolls: 1 },
    ));

  test('DELETE on the status URL cancels the job and its files', () =>
    withStandIn(async (s, token) => {
      const url = (await fhirGet(s, '/Group/any-group/$export', token, EXPORT_HEADERS)).headers.get('content-location') as string;
      const binaryUrl = (await fhirGet(s, url, token)).body.output[0].url as string;
      const del = await fetch(url, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
      expect(del.status).toBe(202);
      expect((await fhirGet(s, url, token)).status).toBe(404);
      expect((await fhirGet(s, binaryUrl, token)).status).toBe(404);
    }));
});

describe('export faults a test can inject (OpenEMR itself never reports deletions)', () => {
  test('the control API adds a deleted[] file of DELETE Bundles to the manifest', () =>
    withStandIn(async (s, token) => {
      await control(s, 'PUT', '/export-settings', { faults: { deleted: [{ resourceType: 'Patient', id: uuid(7, 'aaaaaaaa') }] } });
      const { status } = await exportStatus(s, token, '/$export');
      expect(status.body.deleted).toEqual([{ url: expect.stringMatching(/\/Binary\/\d+$/), type: 'Bundle' }]);
      const bundle = JSON.parse((await fhirGet(s, status.body.deleted[0].url, token)).text.trim());
      expect(bundle.entry).toEqual([{ request: { method: 'DELETE', url: `Patient/${uuid(7, 'aaaaaaaa')}` } }]);
    }));

  test('the control API makes an output file fail with a 500 or a connection reset', () =>
    withStandIn(async (s, token) => {
      await control(s, 'PUT', '/export-settings', { faults: { failFiles: { Patient: 'status-500', Observation: 'reset' } } });
      const { status } = await exportStatus(s, token, '/$export');
      const [obs, pat] = status.body.output.map((o: Json) => o.url as string);
      expect((await fhirGet(s, pat, token)).status).toBe(500);
      await expect(fetch(obs, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.text())).rejects.toThrow();
    }));
});
