/**
 * The DiagnosticReport and DocumentReference rows of src/sync/resource-types.ts: their place in the
 * reference order and the references that must resolve, read wherever the type holds them (a list
 * in DiagnosticReport.result, a nested list in DocumentReference.context.encounter).
 */
import type { DiagnosticReport, DocumentReference } from '@medplum/fhirtypes';
import { carriedReferences, orderedTypes, specOf } from '../../src/sync/resource-types';
import { referenceTargets } from '../../src/sync/sync-service';

const P = '0c2b7a47-5b6f-4a4f-9e0f-1a2b3c4d5e6f';
const E = '1c2b7a47-5b6f-4a4f-9e0f-1a2b3c4d5e6f';
const O1 = '2c2b7a47-5b6f-4a4f-9e0f-1a2b3c4d5e6f';
const O2 = '3c2b7a47-5b6f-4a4f-9e0f-1a2b3c4d5e6f';

test('DiagnosticReport comes after Observation in the reference order, whatever order the setting lists', () => {
  const order = orderedTypes(['DiagnosticReport', 'DocumentReference', 'Observation', 'Encounter', 'Patient']).map((t) => t.type);
  expect(order).toEqual(['Patient', 'Encounter', 'Observation', 'DocumentReference', 'DiagnosticReport']);
  expect(specOf('DiagnosticReport').rank).toBeGreaterThan(specOf('Observation').rank);
});

test('a report must find its Patient, Encounter and every listed Observation; without Observation carried, result is not checked', () => {
  const report = {
    resourceType: 'DiagnosticReport',
    id: 'r',
    status: 'final',
    code: {},
    subject: { reference: `Patient/${P}` },
    encounter: { reference: `Encounter/${E}` },
    result: [{ reference: `Observation/${O1}` }, { reference: `Observation/${O2}/_history/1` }, { display: 'no reference' }],
  } as DiagnosticReport;
  const all = ['Patient', 'Encounter', 'Observation', 'DiagnosticReport'];
  const targets = carriedReferences('DiagnosticReport', all).map((r) => [r.type, referenceTargets(report, r.element, r.type)]);
  expect(targets).toEqual([
    ['Patient', [P]],
    ['Encounter', [E]],
    ['Observation', [O1, O2]],
  ]);
  expect(carriedReferences('DiagnosticReport', ['Patient', 'DiagnosticReport']).map((r) => r.element)).toEqual(['subject']);
});

test("a document's Encounter is read through context.encounter", () => {
  const document = {
    resourceType: 'DocumentReference',
    id: 'd',
    status: 'current',
    content: [{ attachment: {} }],
    subject: { reference: `Patient/${P}` },
    context: { encounter: [{ reference: `Encounter/${E}` }] },
  } as DocumentReference;
  expect(
    carriedReferences('DocumentReference', ['Patient', 'Encounter']).map((r) => referenceTargets(document, r.element, r.type)),
  ).toEqual([[P], [E]]);
  expect(referenceTargets({ ...document, context: {} }, 'context.encounter', 'Encounter')).toEqual([]);
});
