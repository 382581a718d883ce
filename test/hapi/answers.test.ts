import { auditEventsForRun, provenanceFor } from '../../src/audit/records';
import { loadConfig } from '../../src/config/load';
import type { SyncedResource } from '../../src/fhir/types';
import { createTargetWriter, type TargetWriter } from '../../src/target';
import { NoopTelemetry } from '../../src/telemetry/telemetry';
import { startHapiServer, type HapiServer } from '../../stack/hapi';
import { makeRsaKey } from '../helpers/keys';
import { minimalSettings } from '../helpers/settings';

/**
 * HAPI FHIR's answers, as a real HAPI JPA server (stack/hapi, HAPI 8.8.0) gives them, to what the
 * connector sends: its CapabilityStatement, batch bundles, conflicts (409/412), paging and deletes.
 * Each test pins one behaviour the writer relies on, through the writer where it is the writer's.
 */
let hapi: HapiServer;
let target: TargetWriter;
const JSON_HEADERS = { 'content-type': 'application/fhir+json', accept: 'application/fhir+json' };

let settings: NodeJS.ProcessEnv;
const newWriter = (): Promise<TargetWriter> =>
  createTargetWriter(
    loadConfig(settings),
    new NoopTelemetry(),
    () => {
      throw new Error('no Entra credential for a HAPI target');
    },
    { warn: () => undefined },
  );

beforeAll(async () => {
  hapi = await startHapiServer({ log: (l) => console.log(l) });
  const { pem } = await makeRsaKey();
  settings = minimalSettings(pem, {
    AHDS_FHIR_URL: undefined,
    TARGET_KIND: 'fhir',
    TARGET_FHIR_URL: hapi.fhirUrl,
    TARGET_AUTH: 'none',
    AHDS_BATCH_SIZE: '50',
    RETRY_BASE_DELAY_MS: '10',
    RETRY_MAX_DELAY_MS: '200',
  });
  target = await newWriter();
}, 900_000);
afterAll(async () => hapi?.close());

const patient = (id: string, extra: Record<string, unknown> = {}): SyncedResource =>
  ({ resourceType: 'Patient', id, gender: 'female', birthDate: '1970-01-01', ...extra }) as unknown as SyncedResource;
const observation = (id: string, subject: string, value = 70): SyncedResource =>
  ({
    resourceType: 'Observation',
    id,
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
    code: { coding: [{ system: 'http://loinc.org', code: '29463-7', display: 'Body weight' }] },
    subject: { reference: `Patient/${subject}` },
    effectiveDateTime: '2024-01-01T10:00:00Z',
    valueQuantity: { value, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
  }) as unknown as SyncedResource;

async function fhir(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(`${hapi.fhirUrl}${path}`, {
    method,
    headers: { ...JSON_HEADERS, ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers };
}

test('HAPI lists transaction but not batch in its CapabilityStatement, leaves updateCreate out, and versions with versioned-update: the writer plans batch bundles', () => {
  expect(target.capabilities).toMatchObject({
    fhirVersion: '4.0.1',
    batch: false,
    transaction: true,
    software: { name: 'HAPI FHIR Server' },
  });
  expect(target.capabilities!.types.Patient).toMatchObject({ update: true, delete: true, versioning: 'versioned-update' });
  expect(target.plan).toEqual({ bundles: 'batch', reason: 'HAPI FHIR accepts batch bundles (it lists only transaction)' });
});

test('a batch bundle of PUTs is answered batch-response, entry by entry: 201 created, then 200 with the same version for identical content (unchanged), 200 with version 2 for a change', async () => {
  const first = await target.writer.writeBatch([patient('pin-b1'), patient('pin-b2')]);
  expect(first.map((r) => [r.outcome, r.status, r.versionId])).toEqual([
    ['created', 201, '1'],
    ['created', 201, '1'],
  ]);
  const again = await target.writer.writeBatch([patient('pin-b1'), patient('pin-b2', { gender: 'male' })]);
  expect(again.map((r) => [r.outcome, r.status, r.versionId])).toEqual([
    ['unchanged', 200, '1'],
    ['updated', 200, '2'],
  ]);
  // A writer that never saw these versions (a new process): HAPI's SUCCESSFUL_UPDATE_NO_CHANGE says unchanged.
  const fresh = await newWriter();
  const third = await fresh.writer.writeBatch([patient('pin-b1'), patient('pin-b2', { gender: 'male' })]);
  expect(third.map((r) => [r.outcome, r.status, r.versionId])).toEqual([
    ['unchanged', 200, '1'],
    ['unchanged', 200, '2'],
  ]);
});

test('one entry HAPI refuses in a batch fails alone: a reference to a Patient it does not hold is answered per entry, the others are written', async () => {
  const results = await target.writer.writeBatch([
    patient('pin-r1'),
    observation('pin-r-obs1', 'pin-r1'),
    observation('pin-r-obs2', 'pin-nobody'),
  ]);
  expect(results.map((r) => r.outcome)).toEqual(['created', 'created', 'failed']);
  expect(results[2]!.status).toBe(400);
  expect((await fhir('GET', '/Observation/pin-r-obs2')).status).toBe(404);
});

test('HL7 validator rejects a whole batch (422) for one invalid entry; the writer halves the bundle until only that resource fails', async () => {
  const bad = patient('pin-v-bad', { gender: 'bogus' });
  const raw = await fhir('POST', '', {
    resourceType: 'Bundle',
    type: 'batch',
    entry: [patient('pin-v0'), bad].map((resource) => ({ resource, request: { method: 'PUT', url: `Patient/${resource.id}` } })),
  });
  expect(raw.status).toBe(422);
  expect(raw.json.resourceType).toBe('OperationOutcome');
  expect((await fhir('GET', '/Patient/pin-v0')).status).toBe(404);
  const results = await target.writer.writeBatch([patient('pin-v1'), patient('pin-v2'), bad, patient('pin-v3')]);
  expect(results.map((r) => [r.id, r.outcome, r.status])).toEqual([
    ['pin-v1', 'created', 201],
    ['pin-v2', 'created', 201],
    ['pin-v-bad', 'failed', 422],
    ['pin-v3', 'created', 201],
  ]);
});

test('conflicts: a stale If-Match is 409 (HAPI answers a version conflict so, not 412); a conditional update matching several resources is 412; deleting a Patient that Observations reference is 409', async () => {
  await target.writer.writeBatch([
    patient('pin-c1', { gender: 'other' }),
    patient('pin-c2', { gender: 'other' }),
    observation('pin-c-obs', 'pin-c1'),
  ]);
  const stale = await fhir('PUT', '/Patient/pin-c1', patient('pin-c1', { gender: 'other', birthDate: '1971-01-01' }), {
    'if-match': 'W/"7"',
  });
  expect(stale.status).toBe(409);
  expect(stale.json.resourceType).toBe('OperationOutcome');
  const ambiguous = await fhir('PUT', '/Patient?gender=other', { resourceType: 'Patient', gender: 'other' });
  expect(ambiguous.status).toBe(412);
  const referenced = await fhir('DELETE', '/Patient/pin-c1');
  expect(referenced.status).toBe(409);
  expect(referenced.json.resourceType).toBe('OperationOutcome');
  expect((await fhir('GET', '/Patient/pin-c1')).status).toBe(200);
});

test('paging: HAPI answers _count pages with next links (?_getpages=) that the writer follows to the end', async () => {
  const ids = Array.from({ length: 23 }, (_, i) => `pin-page-${String(i).padStart(2, '0')}`);
  await target.writer.writeAll(ids.map((id) => patient(id, { gender: 'unknown' })));
  const first = await fhir('GET', '/Patient?gender=unknown&_count=10');
  expect(first.json.entry).toHaveLength(10);
  expect(first.json.link.find((l: any) => l.relation === 'next').url).toContain('_getpages=');
  const pages: number[] = [];
  const seen: string[] = [];
  for await (const page of target.writer.search('Patient', { gender: 'unknown', _count: '10' })) {
    pages.push(page.length);
    seen.push(...page.map((r) => String(r.id)));
  }
  expect(pages).toEqual([10, 10, 3]);
  expect(seen.sort()).toEqual(ids);
});

test('HAPI answers a repeated search from its cache for a minute, missing what was written since, unless the request says Cache-Control: no-cache (the connector does)', async () => {
  await target.writer.writeAll([patient('pin-s1', { gender: 'female', birthDate: '1999-09-09' })]);
  expect((await fhir('GET', '/Patient?birthdate=1999-09-09')).json.total).toBe(1);
  await target.writer.writeAll([patient('pin-s2', { gender: 'female', birthDate: '1999-09-09' })]);
  expect((await fhir('GET', '/Patient?birthdate=1999-09-09')).json.total).toBe(1);
  expect((await fhir('GET', '/Patient?birthdate=1999-09-09', undefined, { 'cache-control': 'no-cache' })).json.total).toBe(2);
  const seen: string[] = [];
  for await (const page of target.writer.search('Patient', { birthdate: '1999-09-09' })) seen.push(...page.map((r) => String(r.id)));
  expect(seen.sort()).toEqual(['pin-s1', 'pin-s2']);
});

test('deletes: 200 then 410 Gone on read; deleting again is 200; a PUT brings it back as a new version; deleteAll counts what HAPI confirmed', async () => {
  await target.writer.writeBatch([patient('pin-d1'), patient('pin-d2'), patient('pin-d3')]);
  expect((await fhir('DELETE', '/Patient/pin-d1')).status).toBe(200);
  expect((await fhir('GET', '/Patient/pin-d1')).status).toBe(410);
  expect((await fhir('DELETE', '/Patient/pin-d1')).status).toBe(200);
  const revived = await target.writer.writeBatch([patient('pin-d1')]);
  expect(revived[0]).toMatchObject({ status: 201, versionId: '3' });
  expect(await target.writer.deleteAll('Patient', ['pin-d2', 'pin-d3', 'pin-d-never'])).toBe(3);
  expect((await fhir('GET', '/Patient/pin-d2')).status).toBe(410);
});

test('the audit records (src/audit) pass HL7 validator, a re-sent Provenance keeps its version, and both questions are answered by search', async () => {
  await hapi.resetValidationReport();
  await target.writer.writeBatch([patient('pin-a1')]);
  const policy = {
    conceptMaps: ['http://example.org/fhir/ConceptMap/local-to-loinc|1'],
    deid: false,
    uncarriedReferences: 'drop' as const,
    profileClaims: 'drop' as const,
    localCodeSystem: 'urn:openemr:local-code',
  };
  const prov = provenanceFor(
    { resourceType: 'Patient', id: 'pin-a1', contentHash: 'abc', sourceLastUpdated: '2026-01-01T00:00:00Z' },
    { sourceFhirBase: 'https://emr.example.org/apis/default/fhir', policy },
  ) as unknown as SyncedResource;
  const [run] = auditEventsForRun(
    {
      runId: 'run-pin',
      trigger: 'http',
      startedAt: '2026-01-01T00:00:00Z',
      endedAt: '2026-01-01T00:00:05Z',
      status: 'ok',
      written: ['Patient/pin-a1'],
    },
    { sourceFhirBase: 'https://emr.example.org/apis/default/fhir' },
  ) as unknown as SyncedResource[];
  const first = await target.writer.writeBatch([prov, run]);
  expect(first.map((r) => r.status)).toEqual([201, 201]);
  const again = await target.writer.writeBatch([prov]);
  expect(again[0]).toMatchObject({ outcome: 'unchanged', versionId: '1' });
  const report = await hapi.validationReport();
  expect(report.issues.filter((i) => i.severity === 'error' || i.severity === 'fatal')).toEqual([]);
  const byTarget = await fhir('GET', '/Provenance?target=Patient/pin-a1');
  expect(byTarget.json.entry.map((e: any) => e.resource.id)).toEqual([prov.id]);
  const runs = await fhir('GET', '/AuditEvent?entity=Patient/pin-a1');
  expect(runs.json.entry.map((e: any) => e.resource.agent[0].altId)).toEqual(['run-pin']);
  const runWrote = await fhir('GET', '/AuditEvent?altid=run-pin');
  expect(runWrote.json.entry.map((e: any) => e.resource.id)).toEqual([run.id]);
  // HAPI's default referential integrity on delete: what the trail names cannot be deleted (409,
  // DeleteConflictService), hence the README's HAPI setting for the trail with source deletes.
  const refused = await fhir('DELETE', '/Patient/pin-a1');
  expect(refused.status).toBe(409);
  expect(JSON.stringify(refused.json)).toContain('Provenance.target');
  // And a reference to a deleted resource is refused on write (referential integrity on write): a
  // run's deletes are named in its AuditEvent (entity.name), not referenced.
  await target.writer.writeBatch([patient('pin-a2')]);
  expect((await fhir('DELETE', '/Patient/pin-a2')).status).toBe(200);
  const toDeleted = await fhir('PUT', `/AuditEvent/${run!.id}`, {
    ...(run as unknown as Record<string, unknown>),
    entity: [{ what: { reference: 'Patient/pin-a2' } }],
  });
  expect(toDeleted.status).toBe(400);
  expect(toDeleted.json.issue[0].diagnostics).toContain('HAPI-1096: Resource Patient/pin-a2 is deleted');
});
