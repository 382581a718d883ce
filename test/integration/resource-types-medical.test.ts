/**
 * Immunization, Procedure, MedicationRequest and AllergyIntolerance carried end to end beside
 * Patient, Encounter, Condition and Observation (SYNC_RESOURCE_TYPES), against the OpenEMR stand-in
 * (serving them as FhirImmunizationService.php, FhirProcedureService.php,
 * FhirMedicationRequestService.php and FhirAllergyIntoleranceService.php do, see
 * openemr-standin-medical.test.ts) and the AHDS stand-in: target = source for every type, every
 * carried reference resolving (subject or patient, encounter), no new versions on a re-sync, the
 * write order (nothing sent before what it points at is held), an edit of each type in the next
 * incremental run, and what `_lastUpdated` cannot show (a delete, a back-dated row, a procedure order
 * without a report date) found by reconcile.
 */
import { randomUUID } from 'node:crypto';
import { reconcileHttpHandler } from '../../functions/reconcile';
import type { Stack } from '../../stack';
import type { SupportedType } from '../../stack/openemr';
import { narrativeIssues } from '../../src/mapping/ahds-rules';
import { startCarryingStack, type CarryingStack } from '../helpers/carried-types';
import { completeRun, invoke } from '../helpers/functions';
import type { WriteWatch } from '../helpers/reference-watch';

const MEDICAL: SupportedType[] = ['Immunization', 'Procedure', 'MedicationRequest', 'AllergyIntolerance'];
const TYPES: SupportedType[] = ['Patient', 'Encounter', 'Condition', 'Observation', ...MEDICAL];
/** The element each type names its Patient in. */
const PATIENT_ELEMENT: Record<string, string> = { Immunization: 'patient', AllergyIntolerance: 'patient' };
type Json = Record<string, any>;

let stack: Stack;
let run: CarryingStack['run'];
let diff: CarryingStack['diff'];
let unresolved: CarryingStack['unresolved'];
let watch: WriteWatch;

const target = async (type: string, id: string) => (await stack.ahds.read(type, id)) as Json | undefined;

beforeAll(async () => {
  ({ stack, watch, run, diff, unresolved } = await startCarryingStack(TYPES, { prefix: 'rtmed' }));
}, 120_000);
afterAll(() => stack?.close());

test('a full sync carries every type: target = source, every reference resolves, and writes went out in reference order', async () => {
  const answer = await run();
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({ status: 'ok', failed: 0, deadLettered: 0 });
  expect(Object.keys(answer.json.windows)).toEqual(TYPES);
  for (const type of MEDICAL) {
    // All four from the export: Procedure and MedicationRequest (NULL dates never leave an export)
    // because a first run's window starts at the epoch, where their search misses the same rows.
    expect([type, answer.json.windows[type]]).toMatchObject([type, { via: 'export', closed: true }]);
    expect(answer.json.byType[type].created).toBe(stack.openemr.store.count(type));
    expect(stack.openemr.store.count(type)).toBeGreaterThan(0);
  }
  expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });
  expect(await unresolved()).toEqual([]);
  // Each type's Patient and Encounter references point at resources the target holds.
  const immunization = (await stack.ahds.snapshot('Immunization'))[0] as Json;
  expect(immunization.patient.reference).toMatch(/^Patient\//);
  expect(immunization.encounter.reference).toMatch(/^Encounter\//);
  expect(((await stack.ahds.snapshot('MedicationRequest'))[0] as Json).encounter.reference).toMatch(/^Encounter\//);
  expect(watch.dangling).toEqual([]);
  // Patient first, Encounter before everything that points at it.
  expect(watch.firstSent[0]).toBe('Patient');
  for (const type of ['Condition', 'Observation', ...MEDICAL])
    expect(watch.firstSent.indexOf(type)).toBeGreaterThan(watch.firstSent.indexOf('Encounter'));
}, 300_000);

test('an AllergyIntolerance title narrative OpenEMR leaves unescaped arrives as XHTML AHDS accepts (createNarrative concatenates the title)', async () => {
  const store = stack.openemr.store;
  const withTitle = (fragment: string) =>
    store.ids('AllergyIntolerance').find((x) => String((store.get('AllergyIntolerance', x) as Json).text.div).includes(fragment))!;
  // "Shellfish <unspecified>": an unclosed element, rebuilt as escaped text.
  const broken = (await target('AllergyIntolerance', withTitle('<unspecified>')))!;
  expect(broken.text.div).toBe('<div xmlns="http://www.w3.org/1999/xhtml">Shellfish</div>');
  for (const id of store.ids('AllergyIntolerance')) expect(narrativeIssues((await target('AllergyIntolerance', id))!.text.div)).toEqual([]);
});

test('a re-sync of everything creates no new versions', async () => {
  const before = stack.ahds.stats().versionsCreated;
  const answer = await run({ since: '1970-01-01T00:00:00Z' });
  expect(answer.status).toBe(202);
  const done = await completeRun(stack, answer);
  expect(done.state).toBe('succeeded');
  expect(done.result).toMatchObject({ created: 0, updated: 0, failed: 0 });
  expect(stack.ahds.stats().versionsCreated).toBe(before);
  expect(watch.dangling).toEqual([]);
}, 300_000);

test('an edit of each type arrives in the next incremental run; a new Encounter is written before the resources that point at it', async () => {
  const store = stack.openemr.store;
  const encounter = store.get('Encounter', store.ids('Encounter')[5]!) as Json;
  const newEncounterId = randomUUID();
  store.put({ ...encounter, id: newEncounterId } as never);
  const edits: Record<string, [string, Json]> = {
    Immunization: ['status', { status: 'not-done' }],
    Procedure: ['status', { status: 'entered-in-error' }],
    MedicationRequest: ['status', { status: 'stopped' }],
    AllergyIntolerance: ['criticality', { criticality: 'high' }],
  };
  const created: Record<string, string> = {};
  for (const type of MEDICAL) {
    const id = store.ids(type)[1]!;
    const current = store.get(type, id) as Json;
    store.put({ ...current, ...edits[type]![1] } as never);
    created[type] = randomUUID();
    const patientElement = PATIENT_ELEMENT[type] ?? 'subject';
    store.put({
      ...current,
      id: created[type],
      [patientElement]: { reference: encounter.subject.reference },
      ...(type === 'AllergyIntolerance' ? {} : { encounter: { reference: `Encounter/${newEncounterId}` } }),
    } as never);
  }
  store.advanceClock(30);

  const answer = await run();
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({ status: 'ok', failed: 0 });
  expect(answer.json.byType.Encounter).toMatchObject({ created: 1 });
  for (const type of MEDICAL) {
    expect(answer.json.byType[type]).toMatchObject({ created: 1, updated: 1 });
    const [element, change] = edits[type]!;
    expect((await target(type, store.ids(type)[1]!))?.[element]).toBe(change[element]);
    expect(await target(type, created[type]!)).toBeDefined();
  }
  expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });
  expect(await unresolved()).toEqual([]);
  expect(watch.dangling).toEqual([]);
}, 300_000);

test('an Immunization whose Encounter OpenEMR does not have is held back and dead-lettered saying why', async () => {
  const store = stack.openemr.store;
  const missingEncounter = randomUUID();
  const heldId = randomUUID();
  store.put({
    ...(store.get('Immunization', store.ids('Immunization')[2]!) as Json),
    id: heldId,
    encounter: { reference: `Encounter/${missingEncounter}` },
  } as never);
  store.advanceClock(30);
  const answer = await run();
  expect(answer.json).toMatchObject({ status: 'partial', failed: 1, deadLettered: 1 });
  expect(answer.json.failures).toEqual([
    {
      resourceType: 'Immunization',
      id: heldId,
      stage: 'read',
      reason: `Not written because OpenEMR has no Encounter/${missingEncounter} (the Immunization's encounter).`,
    },
  ]);
  expect(await target('Immunization', heldId)).toBeUndefined();
  store.delete('Immunization', heldId);
}, 300_000);

test('what _lastUpdated cannot show (a deleted row, a back-dated row, a procedure order without a report date) is found by reconcile', async () => {
  const store = stack.openemr.store;
  const goneId = store.ids('MedicationRequest')[3]!;
  store.delete('MedicationRequest', goneId);
  const backDatedId = store.ids('AllergyIntolerance')[4]!;
  const backDated = store.get('AllergyIntolerance', backDatedId) as Json;
  // lists.modifydate left a year back (an edit through a path that does not touch it).
  const yearAgo = Math.floor(store.now() / 1000) - 365 * 86400;
  const changed = backDated.criticality === 'high' ? 'low' : 'high';
  store.put({ ...backDated, criticality: changed } as never, { lastUpdated: yearAgo });
  const unreportedId = randomUUID();
  store.put({ ...(store.get('Procedure', store.ids('Procedure')[4]!) as Json), id: unreportedId, status: 'preparation' } as never, {
    lastUpdated: null,
  });
  store.advanceClock(30);

  const incremental = await run();
  expect(incremental.json).toMatchObject({ status: 'ok', failed: 0 });
  expect((await target('AllergyIntolerance', backDatedId))?.criticality).toBe(backDated.criticality);
  expect(await target('Procedure', unreportedId)).toBeUndefined();
  expect(await target('MedicationRequest', goneId)).toBeDefined();

  const answer = await invoke(reconcileHttpHandler, { method: 'POST', url: 'reconcile' });
  const done = await completeRun(stack, answer);
  expect(done.state).toBe('succeeded');
  expect(done.result.byType.MedicationRequest).toMatchObject({ deletedAtSource: 1, missing: 0, stale: 0 });
  expect(done.result.byType.AllergyIntolerance).toMatchObject({ stale: 1, missing: 0 });
  expect(done.result.byType.Procedure).toMatchObject({ missing: 1, stale: 0 });
  expect(done.result.byType.Immunization).toMatchObject({ missing: 0, stale: 0, deletedAtSource: 0 });
  expect((await target('AllergyIntolerance', backDatedId))?.criticality).toBe(changed);
  expect((await target('Procedure', unreportedId))?.status).toBe('preparation');
  expect(await unresolved()).toEqual([]);
  expect(watch.dangling).toEqual([]);
}, 300_000);
