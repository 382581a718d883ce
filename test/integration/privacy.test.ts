import { syncObservationHandler } from '../../functions/sync-observation';
import { syncPatientEverythingHandler } from '../../functions/sync-patient-everything';
import { getConnector } from '../../functions/shared/runtime';
import { MemoryDeadLetterStore } from '../../src/sync/dead-letters';
import { RecordingTelemetry } from '../../src/telemetry/telemetry';
import { startStack, type Stack } from '../../stack';
import { capturedLogs, invoke, useStack } from '../helpers/functions';
import { scanForLeaks } from '../helpers/privacy-scan';

/**
 * A patient whose every identifying field is distinctive, pushed through success and failure
 * paths; nothing identifying, no key and no token may come out anywhere but the target itself.
 */
const patient = {
  resourceType: 'Patient',
  id: 'a0000000-0000-4000-8000-00000000feed',
  identifier: [
    {
      system: 'http://hl7.org/fhir/sid/us-ssn',
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'SS' }] },
      value: '987-65-4329',
    },
    { system: 'urn:mrn', value: 'MRN-77' },
  ],
  name: [{ family: 'Quixotezzle', given: ['Marisoleta'] }],
  telecom: [{ system: 'phone', value: '555-867-5309' }],
  gender: 'female',
  birthDate: '1931-02-29'.replace('29', '28'),
  address: [{ line: ['77 Unforgettable Lane'], city: 'Smallville', postalCode: '01234' }],
};
const PATIENT_STRINGS = ['Quixotezzle', 'Marisoleta', '987-65-4329', '1931-02-28', '77 Unforgettable Lane', '555-867-5309'];

function observation(id: string, extra: Record<string, unknown> = {}) {
  return {
    resourceType: 'Observation',
    id,
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '29463-7', display: 'Body weight' }] },
    subject: { reference: `Patient/${patient.id}` },
    effectiveDateTime: '2024-01-01T10:00:00-05:00',
    valueQuantity: { value: 70, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
    note: [{ text: 'Marisoleta Quixotezzle says hello' }],
    ...extra,
  };
}

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ azurite: false, dataDir: null });
  stack.openemr.store.put(patient as never);
  stack.openemr.store.put(observation('b0000000-0000-4000-8000-000000000001') as never);
  // Invalid at the source: the validator must refuse it, and its reason must not quote the value.
  stack.openemr.store.put(observation('b0000000-0000-4000-8000-000000000002', { status: 'Quixotezzle' }) as never);
});
afterAll(() => stack?.close());

test('no patient data, key or token leaves the connector through answers, logs, telemetry or dead letters', async () => {
  const telemetry = new RecordingTelemetry();
  const deadLetters = new MemoryDeadLetterStore();
  useStack(stack, { RETRY_MAX_ATTEMPTS: '2' }, { telemetry, deadLetters });
  capturedLogs.length = 0;
  const answers: unknown[] = [];

  answers.push(await invoke(syncPatientEverythingHandler, { url: 'x', params: { id: patient.id } }));
  // AHDS refuses writes, then is down; OpenEMR is down.
  stack.ahds.setWriterRole(stack.entra.clientId, false);
  answers.push(await invoke(syncPatientEverythingHandler, { url: 'x', params: { id: patient.id } }));
  stack.ahds.setWriterRole(stack.entra.clientId, true);
  stack.ahds.faults.configure({ rates: { status503: 1 }, retryAfterMs: 5 });
  answers.push(await invoke(syncObservationHandler, { url: 'x', params: { id: 'b0000000-0000-4000-8000-000000000001' } }));
  stack.ahds.faults.configure({});
  stack.openemr.faults.configure({ rates: { reset: 1 }, exemptPaths: [/oauth2/] });
  answers.push(await invoke(syncPatientEverythingHandler, { url: 'x', params: { id: patient.id } }));
  stack.openemr.faults.configure({});

  const connector = await getConnector();
  const liveTokens = [await connector.openemrAuth.getToken()];
  const letters = await deadLetters.list();
  expect(letters.map((d) => d.id)).toContain('b0000000-0000-4000-8000-000000000002');
  // The store keeps each resource's latest failure; the first run's reason is in its dead-letter event.
  const events = telemetry.calls.filter((c) => c.kind === 'deadLetter').map((c) => c.data as { id: string; reason: string });
  expect(events.find((e) => e.id === 'b0000000-0000-4000-8000-000000000002')?.reason).toMatch(/validation/i);

  const everything = JSON.stringify({ answers, logs: capturedLogs, telemetry: telemetry.calls, letters });
  expect(
    scanForLeaks(everything, [
      ...PATIENT_STRINGS,
      stack.openemr.client.privateKeyPem.split('\n')[5]!,
      stack.entra.clientSecret,
      ...liveTokens,
    ]),
  ).toEqual([]);
});

test('under default settings the Patient in AHDS carries no SSN, while its other identifiers stay', async () => {
  useStack(stack);
  await invoke(syncPatientEverythingHandler, { url: 'x', params: { id: patient.id } });
  const stored = (await stack.ahds.read('Patient', patient.id)) as typeof patient;
  expect(JSON.stringify(stored)).not.toContain('987-65-4329');
  expect(stored.identifier.map((i) => i.value)).toEqual(['MRN-77']);
  // Control: the scanner does see the name where it legitimately is, in the target itself.
  expect(scanForLeaks(JSON.stringify(stored), PATIENT_STRINGS).join()).toContain('Quixotezz');
});
