/**
 * DiagnosticReport and DocumentReference carried end to end beside Patient, Encounter and
 * Observation (SYNC_RESOURCE_TYPES), against the OpenEMR stand-in (serving them as
 * FhirDiagnosticReportService.php / FhirDocumentReferenceService.php do, see
 * openemr-standin-reports.test.ts) and the AHDS stand-in, with 6 of the sample's 20 patients and
 * what is theirs (about a third of the 968 reports and 968 documents: the whole sample took 165 s
 * here, too long for the default suite): target = source for every type, every carried reference resolving
 * (DiagnosticReport.result -> Observation, DocumentReference.context.encounter -> Encounter), no new
 * versions on a re-sync, no DiagnosticReport sent before the Observations it lists, and an edit, a
 * delete and a back-dated row caught.
 *
 * The sample's reports are clinical notes (no result); lab reports as
 * DiagnosticReport/FhirDiagnosticReportLaboratoryService.php builds them (category LAB of v2-0074,
 * result -> the lab's Observation/<uuid>) are added to the stand-in for the write-order checks.
 */
import { randomUUID } from 'node:crypto';
import { reconcileHttpHandler } from '../../functions/reconcile';
import { getConnector } from '../../functions/shared/runtime';
import { syncPatientEverythingHandler } from '../../functions/sync-patient-everything';
import type { Stack } from '../../stack';
import type { SupportedType } from '../../stack/openemr';
import { replayDeadLetters } from '../../src/sync/replay';
import { startCarryingStack, type CarryingStack } from '../helpers/carried-types';
import { completeRun, invoke } from '../helpers/functions';
import { control } from '../helpers/openemr-standin-client';
import { scanForLeaks } from '../helpers/privacy-scan';
import type { WriteWatch } from '../helpers/reference-watch';

const TYPES: SupportedType[] = ['Patient', 'Encounter', 'Observation', 'DiagnosticReport', 'DocumentReference'];
type Json = Record<string, any>;

let stack: Stack;
let run: CarryingStack['run'];
let diff: CarryingStack['diff'];
let unresolved: CarryingStack['unresolved'];
/** Every write sent that pointed at something the target did not hold then, and the types' first-write order. */
let watch: WriteWatch;
/** The lab reports added to the source, with the Observations each lists. */
const labs: Array<{ id: string; results: string[] }> = [];
/** The kept sample's reports and documents. */
const sampleCounts = { DiagnosticReport: 0, DocumentReference: 0 };

/** A lab report as FhirDiagnosticReportLaboratoryService.php parseOpenEMRRecord builds it. */
function labReport(id: string, observations: Json[]): Json {
  const first = observations[0]!;
  return {
    resourceType: 'DiagnosticReport',
    id,
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'LAB', display: 'Laboratory' }] }],
    code: first.code,
    subject: first.subject,
    ...(first.encounter ? { encounter: first.encounter } : {}),
    effectiveDateTime: first.effectiveDateTime,
    issued: first.issued ?? first.effectiveDateTime,
    result: observations.map((o) => ({ reference: `Observation/${o.id}` })),
  };
}

/** Keeps the first `count` Patients of the sample and what belongs to them: a faster suite. */
function keepPatients(count: number): void {
  const store = stack.openemr.store;
  const kept = new Set(store.ids('Patient').slice(0, count));
  for (const id of store.ids('Patient')) if (!kept.has(id)) store.delete('Patient', id);
  for (const type of ['Encounter', 'Condition', 'Observation', 'DiagnosticReport', 'DocumentReference'] as const)
    for (const id of store.ids(type)) {
      const subject = (store.get(type, id) as Json).subject?.reference as string | undefined;
      if (!subject || !kept.has(subject.slice('Patient/'.length))) store.delete(type, id);
    }
}

beforeAll(async () => {
  ({ stack, watch, run, diff, unresolved } = await startCarryingStack(TYPES, {
    prefix: 'rtreports',
    settings: { RECONCILE_DELETE_MODE: 'delete' },
  }));
  keepPatients(6);
  const store = stack.openemr.store;
  sampleCounts.DiagnosticReport = store.count('DiagnosticReport');
  sampleCounts.DocumentReference = store.count('DocumentReference');
  // Three lab reports, each listing up to three Observations of one patient's visit.
  const byPatient = new Map<string, Json[]>();
  for (const id of store.ids('Observation')) {
    const o = store.get('Observation', id) as Json;
    const list = byPatient.get(o.subject.reference) ?? [];
    list.push(o);
    byPatient.set(o.subject.reference, list);
  }
  for (const observations of [...byPatient.values()].slice(0, 3)) {
    const id = randomUUID();
    const picked = observations.filter((o) => o.encounter?.reference === observations[0]!.encounter?.reference).slice(0, 3);
    store.put(labReport(id, picked) as never, { lastUpdated: Date.parse(picked[0]!.effectiveDateTime) / 1000 });
    labs.push({ id, results: picked.map((o) => o.id as string) });
  }
}, 120_000);
afterAll(() => stack?.close());

test('a full sync carries both types: target = source, every reference resolves, no DiagnosticReport sent before its Observations', async () => {
  const answer = await run();
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({ status: 'ok', failed: 0, deadLettered: 0 });
  expect(Object.keys(answer.json.windows)).toEqual(['Patient', 'Encounter', 'Observation', 'DocumentReference', 'DiagnosticReport']);
  expect(answer.json.windows.DiagnosticReport).toMatchObject({ via: 'search', closed: true });
  expect(sampleCounts.DocumentReference).toBeGreaterThan(100);
  // Some documents are dated before 1970: their _lastUpdated (the note's date) is below a `ge1970`
  // first window, so the first run reads DocumentReference whole (preEpochDates) to carry them.
  const store = stack.openemr.store;
  const preEpoch = store.ids('DocumentReference').filter((id) => Date.parse((store.get('DocumentReference', id) as Json).date) < 0);
  expect(preEpoch.length).toBeGreaterThan(0);
  expect(answer.json.byType.DiagnosticReport.created).toBe(sampleCounts.DiagnosticReport + labs.length);
  expect(answer.json.byType.DocumentReference.created).toBe(sampleCounts.DocumentReference);
  expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });
  expect(await unresolved()).toEqual([]);
  const lab = (await stack.ahds.read('DiagnosticReport', labs[0]!.id)) as Json;
  expect(lab.result).toEqual(labs[0]!.results.map((id) => ({ reference: `Observation/${id}` })));
  // The clinical notes travel inline (base64 text/plain), as OpenEMR serves them.
  const note = (await stack.ahds.snapshot('DocumentReference'))[0] as Json;
  expect(note.content[0].attachment.data).toMatch(/^[A-Za-z0-9+/=]+$/);
  expect(note.context.encounter[0].reference).toMatch(/^Encounter\//);
  expect(watch.dangling).toEqual([]);
  expect(watch.firstSent.indexOf('DiagnosticReport')).toBeGreaterThan(watch.firstSent.indexOf('Observation'));
}, 300_000);

test('a re-sync of everything creates no new versions', async () => {
  const before = stack.ahds.stats().versionsCreated;
  const answer = await run({ since: '1970-01-01T00:00:00Z' });
  const done = await completeRun(stack, answer);
  expect(done.state).toBe('succeeded');
  expect(done.result).toMatchObject({ created: 0, updated: 0, failed: 0 });
  expect(stack.ahds.stats().versionsCreated).toBe(before);
  expect(watch.dangling).toEqual([]);
}, 300_000);

test('an incremental run catches an edit and a new lab report (after its new Observation); reconcile catches a delete and a back-dated document', async () => {
  const store = stack.openemr.store;
  const openemr = stack.openemr;
  // An edited note (status) through the control API: its row date moves to now.
  const editedId = store.ids('DiagnosticReport')[5]!;
  const edited = store.get('DiagnosticReport', editedId) as Json;
  expect((await control(openemr, 'PUT', `/DiagnosticReport/${editedId}`, { ...edited, status: 'amended' })).status).toBe(200);
  // A new lab with a new Observation: the Observation must be in the target before the report.
  const template = store.get('Observation', labs[1]!.results[0]!) as Json;
  const newObservation = { ...template, id: randomUUID(), meta: undefined };
  expect((await control(openemr, 'PUT', `/Observation/${newObservation.id}`, newObservation)).status).toBe(201);
  const newLabId = randomUUID();
  expect((await control(openemr, 'PUT', `/DiagnosticReport/${newLabId}`, labReport(newLabId, [newObservation]))).status).toBe(201);
  // A document deleted at the source (OpenEMR deletes rows: no search can tell).
  const deletedId = store.ids('DocumentReference')[7]!;
  expect((await control(openemr, 'DELETE', `/DocumentReference/${deletedId}`)).status).toBe(200);
  // A document filed now with a date years back: DocumentReference compares _lastUpdated with that date.
  const backDatedId = randomUUID();
  const backDated = { ...(store.get('DocumentReference', store.ids('DocumentReference')[9]!) as Json), id: backDatedId, meta: undefined };
  const put = await control(openemr, 'PUT', `/DocumentReference/${backDatedId}?lastUpdated=2001-02-03T04:05:06Z`, backDated);
  expect(put.status).toBe(201);
  store.advanceClock(30);

  const answer = await run();
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({ status: 'ok', failed: 0 });
  expect(answer.json.byType).toMatchObject({ DiagnosticReport: { created: 1, updated: 1 }, Observation: { created: 1 } });
  expect(answer.json.byType.DocumentReference?.created ?? 0).toBe(0);
  expect(((await stack.ahds.read('DiagnosticReport', editedId)) as Json).status).toBe('amended');
  expect(await stack.ahds.read('DocumentReference', backDatedId)).toBeUndefined();
  expect(watch.dangling).toEqual([]);
  expect(await diff()).toEqual({ missing: [`DocumentReference/${backDatedId}`], stale: [], extra: [`DocumentReference/${deletedId}`] });

  const reconciled = await completeRun(stack, await invoke(reconcileHttpHandler, { method: 'POST', url: 'reconcile' }));
  expect(reconciled.state).toBe('succeeded');
  expect(reconciled.result.byType.DocumentReference).toMatchObject({ missing: 1, stale: 0, deletedAtSource: 1, deleted: 1 });
  expect(reconciled.result.byType.DiagnosticReport).toMatchObject({ missing: 0, stale: 0, deletedAtSource: 0 });
  expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });
  expect(await unresolved()).toEqual([]);
}, 300_000);

test('a report listing an Observation OpenEMR does not have is held back with a reason free of its note, then replayed once it arrives', async () => {
  const store = stack.openemr.store;
  const missing = randomUUID();
  const heldId = randomUUID();
  const note = store.get('DiagnosticReport', store.ids('DiagnosticReport')[11]!) as Json;
  store.put({ ...note, id: heldId, result: [{ reference: `Observation/${missing}` }] } as never);
  store.advanceClock(30);

  const answer = await run();
  expect(answer.json).toMatchObject({ status: 'partial', failed: 1, deadLettered: 1 });
  expect(answer.json.failures).toEqual([
    {
      resourceType: 'DiagnosticReport',
      id: heldId,
      stage: 'read',
      reason: `Not written because OpenEMR has no Observation/${missing} (the DiagnosticReport's result).`,
    },
  ]);
  expect(await stack.ahds.read('DiagnosticReport', heldId)).toBeUndefined();
  const connector = await getConnector();
  const letters = await connector.deadLetters.list({ resourceType: 'DiagnosticReport' });
  const text = Buffer.from(note.presentedForm[0].data, 'base64').toString('utf8');
  const noteLines = text.split('\n').filter((l) => l.trim().length > 20);
  expect(scanForLeaks(JSON.stringify(letters), [note.presentedForm[0].data, ...noteLines])).toEqual([]);

  const template = store.get('Observation', labs[0]!.results[0]!) as Json;
  store.put({ ...template, id: missing, subject: note.subject, encounter: note.encounter } as never);
  const replay = await replayDeadLetters({ sync: connector.sync, reader: connector.reader, deadLetters: connector.deadLetters } as never, {
    resourceType: 'DiagnosticReport',
  });
  expect(replay).toMatchObject({ attempted: 1, replayed: 1, stillFailing: 0 });
  expect(((await stack.ahds.read('DiagnosticReport', heldId)) as Json).result).toEqual([{ reference: `Observation/${missing}` }]);
  expect(await unresolved()).toEqual([]);
  expect(watch.dangling).toEqual([]);
}, 300_000);

test('a Patient synced with everything writes its lab report after the Observations it lists', async () => {
  const store = stack.openemr.store;
  const patientId = randomUUID();
  store.put({ ...(store.get('Patient', store.ids('Patient')[4]!) as Json), id: patientId } as never);
  const observation: Json = {
    ...(store.get('Observation', labs[2]!.results[0]!) as Json),
    id: randomUUID(),
    subject: { reference: `Patient/${patientId}` },
  };
  delete observation.encounter;
  store.put(observation as never);
  const labId = randomUUID();
  store.put(labReport(labId, [observation]) as never);
  const sentBefore = watch.firstSent.length;
  const answer = await invoke(syncPatientEverythingHandler, {
    method: 'POST',
    url: `sync/patients/${patientId}/everything`,
    params: { id: patientId },
  });
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({
    status: 'ok',
    failed: 0,
    byType: { Patient: { created: 1 }, Observation: { created: 1 }, DiagnosticReport: { created: 1 } },
  });
  expect(watch.firstSent.length).toBe(sentBefore);
  expect(watch.dangling).toEqual([]);
}, 300_000);
