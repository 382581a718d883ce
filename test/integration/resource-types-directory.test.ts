/**
 * Practitioner, Organization and Location (the directory others point at) carried end to end beside
 * Patient and Encounter, against the OpenEMR stand-in serving them as FhirPractitionerService.php,
 * FhirOrganizationService.php and FhirLocationService.php do (data/openemr-directory, linked from
 * the Synthea Encounters as FhirEncounterService.php links participant.individual, serviceProvider
 * and location.location) and the AHDS stand-in: target = source, every reference resolving, no new
 * versions on a re-sync although OpenEMR invents a new address period on every read, edits, a
 * delete, the write order (no Encounter before its Practitioner, Organization and Location).
 */
import { randomUUID } from 'node:crypto';
import { reconcileHttpHandler } from '../../functions/reconcile';
import { syncPatientEverythingHandler } from '../../functions/sync-patient-everything';
import { getConnector } from '../../functions/shared/runtime';
import type { Stack } from '../../stack';
import type { SupportedType } from '../../stack/openemr';
import { replayDeadLetters } from '../../src/sync/replay';
import { startCarryingStack, type CarryingStack } from '../helpers/carried-types';
import { completeRun, invoke } from '../helpers/functions';
import type { WriteWatch } from '../helpers/reference-watch';

const TYPES: SupportedType[] = ['Organization', 'Practitioner', 'Location', 'Patient', 'Encounter'];
type Json = Record<string, any>;

let stack: Stack;
let run: CarryingStack['run'];
let diff: CarryingStack['diff'];
let unresolved: CarryingStack['unresolved'];
/** Every write sent that pointed at something the target did not hold then, and the types' first-write order. */
let watch: WriteWatch;

beforeAll(async () => {
  ({ stack, watch, run, diff, unresolved } = await startCarryingStack(TYPES, {
    prefix: 'rtdir',
    // A Patient's "everything" reads its Observations whatever the carried types.
    alsoRead: ['Observation'],
    settings: { RECONCILE_DELETE_MODE: 'delete' },
  }));
}, 120_000);
afterAll(() => stack?.close());

test('a full sync carries the directory before Patients and Encounters: target = source and every Encounter reference resolves', async () => {
  const answer = await run();
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({ status: 'ok', failed: 0, deadLettered: 0 });
  expect(Object.keys(answer.json.windows)).toEqual(TYPES);
  // All from the export (Location's NULL-dated home-address rows are missed by its epoch-bounded search too).
  for (const type of ['Organization', 'Practitioner', 'Location'])
    expect([type, answer.json.windows[type]]).toMatchObject([type, { via: 'export', closed: true }]);
  for (const type of TYPES) expect(answer.json.byType[type].created).toBe(stack.openemr.store.count(type));
  expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });
  expect(await unresolved()).toEqual([]);
  // The Encounters really point at the directory (data/openemr-directory/links.json).
  const encounter = (await stack.ahds.snapshot('Encounter'))[0] as Json;
  expect(encounter.participant[0].individual.reference).toMatch(/^Practitioner\//);
  expect(encounter.serviceProvider.reference).toMatch(/^Organization\//);
  expect(encounter.location[0].location.reference).toMatch(/^Location\//);
  // OpenEMR's invented address period is not carried; its space-prefixed place-of-service system is trimmed.
  const location = (await stack.ahds.read('Location', encounter.location[0].location.reference.slice(9))) as Json;
  expect(location.address.period).toBeUndefined();
  expect(location.type[0].coding[0].system).toBe('https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set');
  expect(watch.dangling).toEqual([]);
  expect(watch.firstSent).toEqual(TYPES);
}, 300_000);

test('a re-sync of everything creates no new versions (OpenEMR invents a new address period on every read)', async () => {
  const before = stack.ahds.stats().versionsCreated;
  const answer = await run({ since: '1970-01-01T00:00:00Z' });
  expect(answer.status).toBe(202);
  const done = await completeRun(stack, answer);
  expect(done.state).toBe('succeeded');
  expect(done.result).toMatchObject({ created: 0, updated: 0, failed: 0 });
  expect(done.result.byType.Location.unchanged).toBe(stack.openemr.store.count('Location'));
  expect(stack.ahds.stats().versionsCreated).toBe(before);
  expect(watch.dangling).toEqual([]);
}, 300_000);

test('an edit of a Practitioner, an Organization and a Location arrives in the next incremental run; a new Practitioner is written before the Encounter that points at it', async () => {
  const store = stack.openemr.store;
  const practitioner = store.get('Practitioner', store.ids('Practitioner')[0]!) as Json;
  store.put({ ...practitioner, telecom: [{ system: 'phone', value: '(617) 555-0199', use: 'work' }] } as never);
  const organization = store.get('Organization', store.ids('Organization')[0]!) as Json;
  store.put({ ...organization, name: `${organization.name} (Main Campus)` } as never);
  const location = store.get('Location', store.ids('Location')[0]!) as Json;
  store.put({ ...location, status: 'inactive' } as never);
  const newPractitionerId = randomUUID();
  store.put({
    ...practitioner,
    id: newPractitionerId,
    identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: '1234567893' }],
  } as never);
  const encounter = store.get('Encounter', store.ids('Encounter')[0]!) as Json;
  const newEncounterId = randomUUID();
  store.put({
    ...encounter,
    id: newEncounterId,
    participant: [{ individual: { reference: `Practitioner/${newPractitionerId}` } }],
  } as never);
  store.advanceClock(30);

  const answer = await run();
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({ status: 'ok', failed: 0 });
  expect(answer.json.byType).toMatchObject({
    Practitioner: { created: 1, updated: 1 },
    Organization: { updated: 1 },
    Location: { updated: 1 },
    Encounter: { created: 1 },
  });
  expect(((await stack.ahds.read('Practitioner', practitioner.id)) as Json).telecom[0].value).toBe('(617) 555-0199');
  expect(((await stack.ahds.read('Organization', organization.id)) as Json).name).toBe(`${organization.name} (Main Campus)`);
  expect(((await stack.ahds.read('Location', location.id)) as Json).status).toBe('inactive');
  expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });
  expect(await unresolved()).toEqual([]);
  expect(watch.dangling).toEqual([]);
}, 300_000);

test('an Encounter whose Practitioner OpenEMR does not have is held back and dead-lettered saying why, then replayed once the Practitioner arrives', async () => {
  const store = stack.openemr.store;
  const missing = randomUUID();
  const heldId = randomUUID();
  const template = store.get('Encounter', store.ids('Encounter')[1]!) as Json;
  store.put({ ...template, id: heldId, participant: [{ individual: { reference: `Practitioner/${missing}` } }] } as never);
  store.advanceClock(30);
  const answer = await run();
  expect(answer.json).toMatchObject({ status: 'partial', failed: 1, deadLettered: 1 });
  expect(answer.json.failures).toEqual([
    {
      resourceType: 'Encounter',
      id: heldId,
      stage: 'read',
      reason: `Not written because OpenEMR has no Practitioner/${missing} (the Encounter's participant.individual).`,
    },
  ]);
  expect(await stack.ahds.read('Encounter', heldId)).toBeUndefined();

  // The Practitioner arrives at the source; the replay reads and writes it first, then the Encounter.
  store.put({ ...(store.get('Practitioner', store.ids('Practitioner')[1]!) as Json), id: missing } as never);
  const connector = await getConnector();
  const replay = await replayDeadLetters({ sync: connector.sync, reader: connector.reader, deadLetters: connector.deadLetters } as never, {
    resourceType: 'Encounter',
  });
  expect(replay).toMatchObject({ attempted: 1, replayed: 1, stillFailing: 0 });
  expect(((await stack.ahds.read('Encounter', heldId)) as Json).participant[0].individual).toEqual({
    reference: `Practitioner/${missing}`,
  });
  expect(await stack.ahds.read('Practitioner', missing)).toBeDefined();
  expect(await unresolved()).toEqual([]);
  expect(watch.dangling).toEqual([]);
}, 300_000);

test("a Patient synced with everything writes its Encounter's new Practitioner, and a new Location with its Organization, before the Encounter", async () => {
  const store = stack.openemr.store;
  const patientId = randomUUID();
  const practitionerId = randomUUID();
  const organizationId = randomUUID();
  const locationId = randomUUID();
  store.put({ ...(store.get('Patient', store.ids('Patient')[2]!) as Json), id: patientId } as never);
  store.put({ ...(store.get('Practitioner', store.ids('Practitioner')[2]!) as Json), id: practitionerId } as never);
  store.put({ ...(store.get('Organization', store.ids('Organization')[2]!) as Json), id: organizationId } as never);
  const facility = store
    .ids('Location')
    .map((id) => store.get('Location', id) as Json)
    .find((l) => l.identifier)!;
  store.put({
    ...facility,
    id: locationId,
    managingOrganization: { reference: `Organization/${organizationId}`, type: 'Organization' },
  } as never);
  const encounterId = randomUUID();
  store.put({
    ...(store.get('Encounter', store.ids('Encounter')[2]!) as Json),
    id: encounterId,
    subject: { reference: `Patient/${patientId}` },
    participant: [{ individual: { reference: `Practitioner/${practitionerId}` } }],
    location: [{ location: { reference: `Location/${locationId}` } }],
  } as never);
  const answer = await invoke(syncPatientEverythingHandler, {
    method: 'POST',
    url: `sync/patients/${patientId}/everything`,
    params: { id: patientId },
  });
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({
    status: 'ok',
    failed: 0,
    byType: {
      Patient: { created: 1 },
      Practitioner: { created: 1 },
      Organization: { created: 1 },
      Location: { created: 1 },
      Encounter: { created: 1 },
    },
  });
  expect(await unresolved()).toEqual([]);
  expect(watch.dangling).toEqual([]);
}, 300_000);

test('reconcile deletes in the target a Location deleted at the source and finds every other directory resource in sync', async () => {
  const store = stack.openemr.store;
  // A user's "Home Address" Location: nothing points at it.
  const goneId = store
    .ids('Location')
    .find((id) => (store.get('Location', id) as Json).name === 'Home Address' && !(store.get('Location', id) as Json).address)!;
  store.delete('Location', goneId);
  const answer = await invoke(reconcileHttpHandler, { method: 'POST', url: 'reconcile' });
  const done = await completeRun(stack, answer);
  expect(done.state).toBe('succeeded');
  expect(done.result.byType.Location).toMatchObject({ deletedAtSource: 1, deleted: 1, missing: 0, stale: 0 });
  for (const type of ['Organization', 'Practitioner', 'Patient', 'Encounter'])
    expect(done.result.byType[type]).toMatchObject({ missing: 0, stale: 0, deletedAtSource: 0 });
  expect(await stack.ahds.read('Location', goneId)).toBeUndefined();
  expect(await diff()).toEqual({ missing: [], stale: [], extra: [] });
}, 300_000);
