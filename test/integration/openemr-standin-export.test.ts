/**
 * OpenEMR stand-in, bulk export as src/RestControllers/FHIR/Operations/FhirOperationExportRestController.php
 * runs it: synchronously inside the kick-off, under a time budget, every exportable type in route
 * order (Observation before Patient). Each test gets its own empty stand-in.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaultDirectoryDir, FhirResource, OpenEmrStandIn, startOpenEmrStandIn } from '../../stack/openemr';
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

/**
 * The types OpenEMR exports without `type=`, in the order FhirServiceLocator::findServices gives
 * them: the CapabilityStatement's resources, each placed by its first route in
 * apis/routes/_rest_routes_fhir_r4_us_core_3_1_0.inc.php (line numbers), kept when the service
 * implements IFhirExportableResourceService (every one of these: src/Services/FHIR/Fhir<Type>Service.php).
 */
const ROUTE_ORDER = [
  'AllergyIntolerance', // :73
  'Condition', // :167
  'DiagnosticReport', // :221
  'DocumentReference', // :247
  'Encounter', // :297
  'Immunization', // :380
  'Location', // :403
  'MedicationRequest', // :470
  'Observation', // :493
  'Organization', // :503
  'Patient', // :578
  'Practitioner', // :650
  'Procedure', // :703
];
const TIMED_OUT = {
  id: expect.any(String),
  issue: [{ severity: 'error', code: 'processing', details: { text: 'Export process timed out' } }],
  resourceType: 'OperationOutcome',
};
const errorFile = { url: expect.stringMatching(/\/Binary\/\d+$/), type: 'OperationOutcome' };

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
  // :217 processResourceExportForJob before the 202; without `type=` every exportable type the token
  // reads (getResourcesForRequest :618-640) in route order (ROUTE_ORDER), an empty one with an empty
  // file; :286 transactionTime is the job's \DateTime; the status body has no `deleted`.
  test('export runs in the kick-off, every served type in route order, with a PHP DateTime transactionTime and no deleted key', () =>
    withStandIn(async (s, token) => {
      const { kick, status } = await exportStatus(s, token, '/$export');
      expect(kick.headers.get('content-location')).toMatch(/\/apis\/default\/fhir\/\$bulkdata-status\?job=[0-9a-f-]{36}$/);
      expect(status.status).toBe(200);
      expect(status.body).toEqual({
        transactionTime: { date: expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.000000$/), timezone_type: 1, timezone: '-05:00' },
        request: '/apis/default/fhir/$export',
        requiresAccessToken: true,
        output: ROUTE_ORDER.map((type) => ({ url: expect.stringMatching(/\/apis\/default\/fhir\/Binary\/\d+$/), type })),
        error: [],
      });
      const files = await Promise.all(status.body.output.map((o: Json) => fhirGet(s, o.url, token)));
      expect(new Set(files.map((f) => f.headers.get('content-type')))).toEqual(new Set(['application/fhir+ndjson']));
      expect(files.map((f) => idsOf(f.text).length)).toEqual(ROUTE_ORDER.map((t) => (t === 'Observation' ? 3 : t === 'Patient' ? 2 : 0)));
    }));

  // :178 `$type = $exportParams['type']`; `_type` is never read (openemr#8668).
  test('type= chooses the exported types and _type is ignored', () =>
    withStandIn(async (s, token) => {
      const typed = await exportStatus(s, token, '/$export?type=Patient');
      expect(typed.status.body.output.map((o: Json) => o.type)).toEqual(['Patient']);
      const underscored = await exportStatus(s, token, '/Patient/$export?_type=Patient');
      expect(underscored.status.body.output.map((o: Json) => o.type)).toEqual(ROUTE_ORDER);
    }));

  // :180 explode(",", $type) -> getResourcesForRequest keeps the list as given (:629-630) ->
  // $job->setResources; processResourceExportForJob walks $job->getResources() in that order (:414).
  test('type= exports its types in the order the list gives, not in route order', () =>
    withStandIn(async (s, token) => {
      const { status } = await exportStatus(s, token, '/$export?type=Patient,Encounter,Observation');
      expect(status.body.output.map((o: Json) => o.type)).toEqual(['Patient', 'Encounter', 'Observation']);
      const files = await Promise.all(status.body.output.map((o: Json) => fhirGet(s, o.url, token)));
      expect(files.map((f) => idsOf(f.text).length)).toEqual([2, 0, 3]);
    }));

  // FhirPractitionerService.php, FhirOrganizationService.php and FhirLocationService.php implement
  // IFhirExportableResourceService with FhirBulkExportDomainResourceTrait: the directory is exported
  // whole, each row as its search serves it.
  test('with the directory loaded, Practitioner, Organization and Location are exported whole, in route order', () =>
    withStandIn(
      async (s, token) => {
        const { status } = await exportStatus(s, token, '/$export');
        expect(status.body.output.map((o: Json) => o.type)).toEqual(ROUTE_ORDER);
        expect(status.body.error).toEqual([]);
        for (const type of ['Practitioner', 'Organization', 'Location']) {
          const file = status.body.output.find((o: Json) => o.type === type);
          const exported = idsOf((await fhirGet(s, file.url, token)).text);
          const searched = ((await fhirGet(s, `/${type}`, token)).body.entry ?? []).map((e: Json) => e.resource.id as string);
          expect([type, exported.length > 0, [...exported].sort()]).toEqual([type, true, [...searched].sort()]);
        }
      },
      // An empty data folder: the directory alone beside the test's own Patients and Observations.
      { dataDir: fs.mkdtempSync(path.join(os.tmpdir(), 'standin-export-')), directoryDir: defaultDirectoryDir() },
    ));

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
        // Observation costs 30 ms, Patient 20 ms, the empty types nothing: Patient is cut off, and
        // Practitioner and Procedure after it fail at once.
        const upTo = (type: string) => ROUTE_ORDER.slice(0, ROUTE_ORDER.indexOf(type));
        const late = await exportStatus(s, token, '/$export');
        expect(late.status.body.output.map((o: Json) => o.type)).toEqual(upTo('Patient'));
        expect(late.status.body.error).toEqual([errorFile, TIMED_OUT, TIMED_OUT]);
        const file = await fhirGet(s, late.status.body.error[0].url, token);
        expect(JSON.parse(file.text.trim())).toEqual(TIMED_OUT);
        // A budget smaller than the Observations: Observation gets the file, every later type fails at once.
        await control(s, 'PUT', '/export-settings', { timeBudgetMs: 20 });
        const early = await exportStatus(s, token, '/$export');
        expect(early.status.body.output.map((o: Json) => o.type)).toEqual(upTo('Observation'));
        expect(early.status.body.error).toEqual([errorFile, TIMED_OUT, TIMED_OUT, TIMED_OUT, TIMED_OUT]);
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

  // FhirBulkExportDomainResourceTrait.php:71-73: _lastUpdated >= _since, epoch by default (:176).
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

  // :176 `new \DateTime(date(\DateTimeInterface::ATOM, 0)) // since epoch time` when _since is empty,
  // and FhirDocumentReferenceService's sub-services filter `_lastUpdated` on the note's or document's
  // clinical `date` (FhirClinicalNotesService.php, FhirPatientDocumentReferenceService.php): a note
  // dated 1962 never leaves an export, while the Patient's search finds it.
  test('without _since the export starts at the Unix epoch: a DocumentReference dated before 1970 is not exported, its search finds it', () =>
    withStandIn(async (s, token) => {
      const note = (n: number, date: string): FhirResource => ({
        resourceType: 'DocumentReference',
        id: uuid(n, 'cccccccc'),
        status: 'current',
        type: { coding: [{ system: 'http://loinc.org', code: '11506-3' }] },
        subject: { reference: `Patient/${uuid(1, 'aaaaaaaa')}` },
        date,
        content: [{ attachment: { contentType: 'text/plain', data: 'bm90ZQ==' } }],
      });
      s.store.put(note(1, '1962-05-01T09:00:00-05:00'), { lastUpdated: Date.parse('1962-05-01T14:00:00Z') / 1000 });
      s.store.put(note(2, '2021-05-01T09:00:00-05:00'), { lastUpdated: Date.parse('2021-05-01T14:00:00Z') / 1000 });
      const { status } = await exportStatus(s, token, '/$export?type=DocumentReference');
      expect(idsOf((await fhirGet(s, status.body.output[0].url, token)).text)).toEqual([uuid(2, 'cccccccc')]);
      const searched = await fhirGet(s, `/DocumentReference?patient=${uuid(1, 'aaaaaaaa')}`, token);
      expect(searched.body.entry.map((e: Json) => e.resource.id).sort()).toEqual([uuid(1, 'cccccccc'), uuid(2, 'cccccccc')]);
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
      const urlOf = (type: string) => status.body.output.find((o: Json) => o.type === type).url as string;
      const [obs, pat] = [urlOf('Observation'), urlOf('Patient')];
      expect((await fhirGet(s, pat, token)).status).toBe(500);
      await expect(fetch(obs, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.text())).rejects.toThrow();
    }));
});
