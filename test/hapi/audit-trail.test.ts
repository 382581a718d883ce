import { randomUUID } from 'node:crypto';
import { loadConfig } from '../../src/config/load';
import { createConnector, type Connector } from '../../src/connector';
import { startStack, type Stack } from '../../stack';
import { reconcileBySearch, trimSource } from '../helpers/incremental-stack';
import { hapiAll } from './hapi-target';

/**
 * The audit trail (AUDIT_TRAIL) against a real HAPI FHIR JPA server (stack/hapi, HAPI 8.8): HL7's
 * validator finds no error in the Provenance and AuditEvents, the README's two questions are answered
 * by HAPI's own search parameters, and a re-sync of unchanged data makes no Provenance and no version
 * (HAPI keeps a PUT of identical content as the version it has: SUCCESSFUL_UPDATE_NO_CHANGE).
 * Then AUDIT_TRAIL=per-run on the same server (no second JVM on the CI machine), over the same small
 * source: one Provenance per written bundle, its targets written in that very batch.
 */
let stack: Stack;
let connector: Connector;
const connectorWith = (mode: string): Promise<Connector> =>
  createConnector(
    // Patient and Observation: the trail is the subject here (story.test.ts and deid.test.ts carry the
    // other types into HAPI); with every default type, per-resource Provenance doubles a run that
    // already holds three HAPI servers on a 2-core CI machine.
    loadConfig({
      ...stack.env,
      RETRY_BASE_DELAY_MS: '20',
      AHDS_BATCH_SIZE: '25',
      AUDIT_TRAIL: mode,
      SYNC_RESOURCE_TYPES: 'Patient,Observation',
    }),
    { state: null },
  );
beforeAll(async () => {
  // As the README asks of a HAPI target with the trail on: referential integrity on delete off (the
  // trail's references would otherwise keep every audited resource from being deleted, answers.test.ts).
  stack = await startStack({ azurite: false, target: 'hapi', hapi: { log: (l) => console.log(l), referentialIntegrityOnDelete: false } });
  trimSource(stack, 40);
  connector = await connectorWith('per-resource');
}, 900_000);
afterAll(() => stack?.close());

async function search(path: string): Promise<any[]> {
  const res = await fetch(`${stack.hapi!.fhirUrl}${path}`, { headers: { accept: 'application/fhir+json', 'cache-control': 'no-cache' } });
  expect(res.status).toBe(200);
  const bundle = (await res.json()) as { entry?: Array<{ resource: any }> };
  return (bundle.entry ?? []).map((e) => e.resource);
}

test('per-resource on HAPI: valid Provenance and AuditEvents (0 validator errors), both questions answered by search, a re-sync adds no Provenance', async () => {
  await stack.hapi!.resetValidationReport();
  const first = await connector.sync.fullSync({ trigger: 'cli', runId: 'hapi-run-1' });
  const written = first.created + first.updated;
  expect(first).toMatchObject({ failed: 0 });
  expect(first.audit).toMatchObject({ provenanceCreated: written, provenanceFailed: 0, auditEventsFailed: 0 });
  const report = await stack.hapi!.validationReport();
  console.log(
    `HAPI validator on a full sync with its audit trail: ${report.requests} requests judged\n${report.issues.map((i) => `${i.severity}\t${i.count}\t${i.messageId}\t${i.path}\t${i.example}`).join('\n')}`,
  );
  expect(report.issues.filter((i) => i.severity === 'error' || i.severity === 'fatal')).toEqual([]);

  const patientId = stack.openemr.store.ids('Patient')[0]!;
  const provenance = await search(`/Provenance?target=Patient/${patientId}`);
  expect(provenance.map((p) => p.target)).toEqual([[{ reference: `Patient/${patientId}` }]]);
  expect((await search(`/AuditEvent?entity=Patient/${patientId}`)).map((e) => e.agent[0].altId)).toEqual(['hapi-run-1']);
  const ofRun = await search('/AuditEvent?altid=hapi-run-1&_count=100');
  const refs = ofRun.flatMap((e) => e.entity.flatMap((x: any) => (x.what.reference ? [x.what.reference] : [])));
  expect(refs).toHaveLength(written);

  const before = await hapiAll(stack.hapi!.fhirUrl, 'Provenance');
  expect(before).toHaveLength(written);
  const again = await connector.sync.fullSync({ trigger: 'cli', runId: 'hapi-run-2' });
  expect(again).toMatchObject({ created: 0, updated: 0, failed: 0 });
  expect(again.audit).toMatchObject({ provenanceCreated: 0, provenanceUnchanged: written, auditEvents: 0 });
  const after = await hapiAll(stack.hapi!.fhirUrl, 'Provenance');
  expect(after).toHaveLength(written);
  expect(new Set(after.map((p) => p.meta.versionId))).toEqual(new Set(['1']));
  expect(await search('/AuditEvent?altid=hapi-run-2')).toEqual([]);
});

test('a source delete applied by reconcile is recorded as AuditEvent action D on HAPI, named (HAPI refuses a reference to a deleted resource)', async () => {
  const goneId = stack.openemr.store.ids('Observation').at(-1)!;
  stack.openemr.store.delete('Observation', goneId);
  const summary = await reconcileBySearch(connector);
  expect(summary.byType.Observation!.deleted).toBe(1);
  expect(summary.audit).toMatchObject({ auditEventsFailed: 0 });
  const deletes = await search(`/AuditEvent?entity-name=Observation/${goneId}&action=D`);
  expect(deletes.map((e) => e.agent[0].altId)).toEqual([summary.runId]);
  const report = await stack.hapi!.validationReport();
  expect(report.issues.filter((i) => i.severity === 'error' || i.severity === 'fatal')).toEqual([]);
});

test("per-run on HAPI: one Provenance per written bundle, accepted beside the resources it targets in the same batch (a new one among them), 0 validator errors; the run's AuditEvent names what it wrote; a re-sync adds nothing", async () => {
  const perRun = await connectorWith('per-run');
  const store = stack.openemr.store;
  // What HAPI holds since the tests above is unchanged: an edited Patient, an edited Observation and a
  // new Observation give the run something to write (and so an AuditEvent).
  const patientId = store.ids('Patient')[1]!;
  const patient = store.get('Patient', patientId) as Record<string, any>;
  store.put({ ...patient, name: [{ use: 'official', family: 'Trailname', given: ['Ann'] }] } as never);
  const obsId = store.ids('Observation')[0]!;
  const obs = store.get('Observation', obsId) as Record<string, any>;
  store.put({ ...obs, status: obs.status === 'final' ? 'amended' : 'final' } as never);
  const newObsId = randomUUID();
  store.put({ ...obs, id: newObsId, valueQuantity: { value: 61, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' } } as never);
  const before = new Set((await hapiAll(stack.hapi!.fhirUrl, 'Provenance')).map((p) => p.id));
  await stack.hapi!.resetValidationReport();

  const first = await perRun.sync.fullSync({ trigger: 'cli', runId: 'hapi-batch-1' });
  expect(first).toMatchObject({ created: 1, updated: 2, failed: 0 });
  const fresh = (await hapiAll(stack.hapi!.fhirUrl, 'Provenance')).filter((p) => !before.has(p.id));
  expect(first.audit).toMatchObject({ provenanceCreated: fresh.length, provenanceFailed: 0, auditEvents: 1, auditEventsFailed: 0 });
  // Every Patient and Observation HAPI holds is covered once; a bundle holds up to 25 resources.
  const data = [...(await hapiAll(stack.hapi!.fhirUrl, 'Patient')), ...(await hapiAll(stack.hapi!.fhirUrl, 'Observation'))];
  const targets = fresh.flatMap((p) => p.target.map((t: { reference: string }) => t.reference));
  expect(targets.sort()).toEqual(data.map((r) => `${r.resourceType}/${r.id}`).sort());
  expect(fresh.every((p) => p.target.length <= 25)).toBe(true);
  expect(fresh.length).toBeLessThan(data.length / 2);
  expect(fresh.every((p) => p.policy.includes('urn:fhirsync:policy:deid=off'))).toBe(true);
  const report = await stack.hapi!.validationReport();
  console.log(
    `HAPI validator on a per-run sync (${data.length} resources, ${fresh.length} Provenances): ${report.requests} requests judged\n${report.issues.map((i) => `${i.severity}\t${i.count}\t${i.messageId}\t${i.path}\t${i.example}`).join('\n')}`,
  );
  expect(report.issues.filter((i) => i.severity === 'error' || i.severity === 'fatal')).toEqual([]);

  // Which runs wrote Patient/X: the per-resource Provenance of the first run and the bundle's of this one.
  const ofPatient = (await search(`/Provenance?target=Patient/${patientId}`)).filter((p) => !before.has(p.id));
  expect(ofPatient).toHaveLength(1);
  expect(ofPatient[0].target.length).toBeGreaterThan(1);
  expect((await search(`/AuditEvent?entity=Observation/${newObsId}`)).map((e) => e.agent[0].altId)).toEqual(['hapi-batch-1']);
  const ofRun = await search('/AuditEvent?altid=hapi-batch-1');
  expect(ofRun.flatMap((e) => e.entity.flatMap((x: any) => (x.what.reference ? [x.what.reference] : []))).sort()).toEqual(
    [`Observation/${newObsId}`, `Observation/${obsId}`, `Patient/${patientId}`].sort(),
  );

  const again = await perRun.sync.fullSync({ trigger: 'cli', runId: 'hapi-batch-2' });
  expect(again).toMatchObject({ created: 0, updated: 0, failed: 0 });
  expect(again.audit).toMatchObject({ provenanceCreated: 0, provenanceUnchanged: fresh.length, auditEvents: 0 });
  const after = (await hapiAll(stack.hapi!.fhirUrl, 'Provenance')).filter((p) => !before.has(p.id));
  expect(after.map((p) => p.id).sort()).toEqual(fresh.map((p) => p.id).sort());
  expect(new Set(after.map((p) => p.meta.versionId))).toEqual(new Set(['1']));
  expect(await search('/AuditEvent?altid=hapi-batch-2')).toEqual([]);
});
