import { loadConfig } from '../../src/config/load';
import { createConnector, type Connector } from '../../src/connector';
import { startStack, type Stack } from '../../stack';
import { ahdsClient, type AhdsTestClient } from '../helpers/ahds-client';
import { reconcileBySearch, trimSource } from '../helpers/incremental-stack';

/**
 * The audit trail (AUDIT_TRAIL) on the AHDS stand-in: Provenance in the same bundle as what it covers,
 * AuditEvents per run, both questions of the README answered by FHIR searches AHDS supports (R4
 * AuditEvent-entity, AuditEvent-altid and Provenance-target are not in microsoft/fhir-server's
 * src/Microsoft.Health.Fhir.Core/Data/R4/unsupported-search-parameters.json), and a re-sync of
 * unchanged data adds nothing.
 */
let stack: Stack;
let ahds: AhdsTestClient;
beforeAll(async () => {
  stack = await startStack({ azurite: false });
  trimSource(stack, 40);
  ahds = await ahdsClient(stack.ahds);
});
afterAll(() => stack?.close());

// Patient and Observation: the counts below are theirs. (With Encounters carried, a birth Encounter's
// source lastUpdated, which is Provenance.recorded, is the birth date on the stand-in's Synthea rows.)
const connectorWith = (mode: string): Promise<Connector> =>
  createConnector(
    loadConfig({
      ...stack.env,
      RETRY_BASE_DELAY_MS: '20',
      AHDS_BATCH_SIZE: '25',
      AUDIT_TRAIL: mode,
      SYNC_RESOURCE_TYPES: 'Patient,Observation',
    }),
    { state: null },
  );

async function search(path: string): Promise<any[]> {
  const res = await ahds.request('GET', path);
  expect(res.status).toBe(200);
  // A parameter AHDS does not support is ignored with an outcome entry: none here.
  expect((res.body.entry ?? []).filter((e: any) => e.search?.mode === 'outcome')).toEqual([]);
  return (res.body.entry ?? []).map((e: any) => e.resource);
}

/** Every Provenance with its version count: a new Provenance or a new version of one shows here. */
async function provenanceVersions(): Promise<Map<string, number>> {
  const all = await stack.ahds.snapshot('Provenance');
  return new Map(all.map((p) => [p.id!, stack.ahds.versionCount('Provenance', p.id!)]));
}

async function clearTrail(): Promise<void> {
  for (const type of ['Provenance', 'AuditEvent'])
    for (const r of await stack.ahds.snapshot(type)) await ahds.request('DELETE', `/${type}/${r.id}`);
}

test('per-resource: a Provenance per written resource, the run in its AuditEvent; both questions answered by search; a re-sync of unchanged data adds nothing', async () => {
  await clearTrail();
  const connector = await connectorWith('per-resource');
  const first = await connector.sync.fullSync({ trigger: 'cli', runId: 'run-audit-1' });
  const written = first.created + first.updated;
  expect(first.failed).toBe(0);
  expect(written).toBeGreaterThan(25);
  expect(first.audit).toMatchObject({ provenanceCreated: written, provenanceFailed: 0, auditEventsFailed: 0 });

  const patientId = stack.openemr.store.ids('Patient')[0]!;
  // Which runs wrote Patient/X: its Provenance says what and under which policy; AuditEvents name the runs.
  const provenance = await search(`/Provenance?target=Patient/${patientId}`);
  expect(provenance).toHaveLength(1);
  expect(provenance[0].target).toEqual([{ reference: `Patient/${patientId}` }]);
  expect(provenance[0].entity[0].what.identifier.value).toBe(`Patient/${patientId}`);
  expect(provenance[0].policy).toContain('urn:fhirsync:policy:deid=off');
  const runs = await search(`/AuditEvent?entity=Patient/${patientId}`);
  expect(runs.map((e) => e.agent[0].altId)).toEqual(['run-audit-1']);
  // What did run R write: its AuditEvents (one per action and 1000 entities) list it.
  const ofRun = await search('/AuditEvent?altid=run-audit-1&_count=100');
  const refs = ofRun.flatMap((e) => e.entity.flatMap((x: any) => (x.what.reference ? [x.what.reference] : [])));
  expect(refs).toHaveLength(written);
  expect(refs).toContain(`Patient/${patientId}`);

  const before = await provenanceVersions();
  const eventsBefore = (await stack.ahds.snapshot('AuditEvent')).length;
  expect(before.size).toBe(written);
  expect([...before.values()].every((v) => v === 1)).toBe(true);
  const again = await connector.sync.fullSync({ trigger: 'cli', runId: 'run-audit-2' });
  expect(again).toMatchObject({ created: 0, updated: 0, failed: 0 });
  expect(again.audit).toMatchObject({ provenanceCreated: 0, provenanceUnchanged: written, auditEvents: 0 });
  expect(await provenanceVersions()).toEqual(before);
  expect((await stack.ahds.snapshot('AuditEvent')).length).toBe(eventsBefore);
  expect(await search('/AuditEvent?altid=run-audit-2')).toEqual([]);

  // One changed Observation: one new Provenance for its new content, and run 3 is among its writers.
  const obsId = stack.openemr.store.ids('Observation')[0]!;
  const obs = stack.openemr.store.get('Observation', obsId) as Record<string, unknown>;
  stack.openemr.store.put({ ...obs, status: obs.status === 'final' ? 'amended' : 'final' } as never);
  const third = await connector.sync.fullSync({ trigger: 'cli', runId: 'run-audit-3' });
  expect(third).toMatchObject({ updated: 1, created: 0 });
  expect(third.audit).toMatchObject({ provenanceCreated: 1, auditEvents: 1 });
  expect((await search(`/Provenance?target=Observation/${obsId}`)).length).toBe(2);
  expect((await search(`/AuditEvent?entity=Observation/${obsId}`)).map((e) => e.agent[0].altId).sort()).toEqual([
    'run-audit-1',
    'run-audit-3',
  ]);
  expect((await provenanceVersions()).size).toBe(written + 1);
});

test('per-run: one Provenance per written bundle targeting all its resources; a re-sync adds none', async () => {
  await clearTrail();
  const connector = await connectorWith('per-run');
  const first = await connector.sync.fullSync({ trigger: 'cli', runId: 'run-batch-1' });
  expect(first.failed).toBe(0);
  const provenance = await stack.ahds.snapshot('Provenance');
  const targets = provenance.flatMap((p: any) => p.target.map((t: any) => t.reference));
  // Every resource in the target is covered once; bundles hold up to 25 resources.
  const data = [...(await stack.ahds.snapshot('Patient')), ...(await stack.ahds.snapshot('Observation'))];
  expect(targets.sort()).toEqual(data.map((r) => `${r.resourceType}/${r.id}`).sort());
  expect(provenance.length).toBeLessThan(data.length / 2);
  expect(provenance.every((p: any) => p.target.length <= 25)).toBe(true);
  const before = await provenanceVersions();
  const again = await connector.sync.fullSync({ trigger: 'cli', runId: 'run-batch-2' });
  expect(again.audit).toMatchObject({ provenanceCreated: 0, auditEvents: 0 });
  expect(await provenanceVersions()).toEqual(before);
});

test('reconcile deletes are on record (AuditEvent action D); no name, birth date or address from the source is in any trail record', async () => {
  const connector = await connectorWith('per-resource');
  await connector.sync.fullSync({ trigger: 'cli', runId: 'run-del-0' });
  const goneId = stack.openemr.store.ids('Observation').at(-1)!;
  stack.openemr.store.delete('Observation', goneId);
  const summary = await reconcileBySearch(connector);
  expect(summary.byType.Observation!.deleted).toBe(1);
  const deletes = await search(`/AuditEvent?entity-name=Observation/${goneId}&action=D`);
  expect(deletes).toHaveLength(1);
  expect(deletes[0].agent[0].altId).toBe(summary.runId);

  const trail = JSON.stringify([...(await stack.ahds.snapshot('Provenance')), ...(await stack.ahds.snapshot('AuditEvent'))]);
  const secrets: string[] = [];
  for (const id of stack.openemr.store.ids('Patient')) {
    const p = stack.openemr.store.get('Patient', id) as any;
    for (const n of p.name ?? []) secrets.push(...(n.given ?? []), n.family);
    secrets.push(p.birthDate);
    for (const a of p.address ?? []) secrets.push(...(a.line ?? []), a.city, a.postalCode);
  }
  const present = secrets.filter((s) => typeof s === 'string' && s.length > 3 && trail.includes(s));
  expect(secrets.length).toBeGreaterThan(10);
  expect(present).toEqual([]);
});
