/**
 * Mapping of DiagnosticReport and DocumentReference (src/sync/resource-types.ts rows,
 * src/mapping/attachments.ts): references kept, a local code in a LOINC slot relabelled (OpenEMR's
 * lab reports label standard_code LOINC whatever it is: DiagnosticReport/FhirDiagnosticReportLaboratoryService.php),
 * inline notes carried, OpenEMR Binary urls (DocumentReference/Trait/FhirDocumentReferenceTrait.php
 * populateContent) not carried, and de-identification removing the free text.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { DiagnosticReport, DocumentReference, Patient } from '@medplum/fhirtypes';
import { createResourceMapper, type MapOutcome } from '../../src/mapping';
import type { SyncedResource } from '../../src/fhir/types';
import { DEFAULT_OPTIONS, deidOptions } from '../fixtures/mapping/load';

const DATA = path.resolve(__dirname, '../..', 'data/synthea-dev');
const first = <T>(file: string, pick: (r: any) => boolean = () => true): T =>
  fs
    .readFileSync(path.join(DATA, file), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l))
    .find(pick) as T;
/** As OpenEMR serves them: urn:uuid references resolved to Type/id, conditional references gone. */
function served<T extends { subject?: unknown }>(r: T, encounterPath: 'encounter' | 'context'): T {
  const out = JSON.parse(JSON.stringify(r)) as any;
  out.subject = { reference: `Patient/${out.subject.reference.slice('urn:uuid:'.length)}` };
  if (encounterPath === 'encounter') out.encounter = { reference: `Encounter/${out.encounter.reference.slice('urn:uuid:'.length)}` };
  else out.context.encounter = [{ reference: `Encounter/${out.context.encounter[0].reference.slice('urn:uuid:'.length)}` }];
  delete out.performer;
  delete out.author;
  delete out.custodian;
  return out as T;
}
function ok(outcome: MapOutcome): Extract<MapOutcome, { ok: true }> {
  if (!outcome.ok) throw new Error(`expected ok, got: ${outcome.reason}`);
  return outcome;
}
const CARRIED = ['Patient', 'Encounter', 'Observation', 'DiagnosticReport', 'DocumentReference'];
const report = served(first<DiagnosticReport>('DiagnosticReport.ndjson'), 'encounter');
const document = served(first<DocumentReference>('DocumentReference.ndjson'), 'context');
const patientId = report.subject!.reference!.slice('Patient/'.length);
const patient = first<Patient>('Patient.ndjson', (p) => p.id === patientId);
const noteText = Buffer.from(report.presentedForm![0]!.data!, 'base64').toString('utf8');

test('a clinical-note DiagnosticReport and DocumentReference map with their references and inline note kept, deterministically', () => {
  const mapper = createResourceMapper({ ...DEFAULT_OPTIONS, carriedTypes: CARRIED });
  const r = ok(mapper.map(report as SyncedResource)).resource as DiagnosticReport;
  expect(r.subject).toEqual(report.subject);
  expect(r.encounter).toEqual(report.encounter);
  expect(r.presentedForm).toEqual(report.presentedForm);
  expect(r.code!.coding!.map((c) => c.code)).toEqual(['34117-2', '51847-2']);
  const d = ok(mapper.map(document as SyncedResource)).resource as DocumentReference;
  expect(d.context!.encounter).toEqual(document.context!.encounter);
  expect(d.content).toEqual(document.content);
  expect(JSON.stringify(ok(mapper.map(report as SyncedResource)).resource)).toBe(JSON.stringify(r));
});

test('a lab report keeps its result references and a local code OpenEMR labels LOINC is relabelled and reported', () => {
  const mapper = createResourceMapper({ ...DEFAULT_OPTIONS, carriedTypes: CARRIED });
  const lab = {
    resourceType: 'DiagnosticReport',
    id: 'a1b2c3d4-0000-4000-8000-000000000001',
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'LAB' }] }],
    code: { coding: [{ system: 'http://loinc.org', code: 'CBCPANEL', display: 'CBC' }] },
    subject: { reference: `Patient/${patientId}` },
    result: [{ reference: 'Observation/a1b2c3d4-0000-4000-8000-000000000002', display: 'Hemoglobin' }],
  } as DiagnosticReport;
  const out = ok(mapper.map(lab as SyncedResource));
  const r = out.resource as DiagnosticReport;
  expect(r.result).toEqual(lab.result);
  expect(r.code!.coding).toEqual([{ system: DEFAULT_OPTIONS.localCodeSystem, code: 'CBCPANEL', display: 'CBC' }]);
  expect(out.unmapped).toEqual([{ system: DEFAULT_OPTIONS.localCodeSystem, code: 'CBCPANEL', display: 'CBC' }]);
});

test("a patient document's url into OpenEMR's Binary route is not carried; what the document is stays", () => {
  const mapper = createResourceMapper({ ...DEFAULT_OPTIONS, carriedTypes: CARRIED });
  const binaryUrl = 'https://emr.example.org/apis/default/fhir/Binary/96dd1a5e-1d5f-4fb3-9b54-1f2c1a0a0b7e';
  const scanned = {
    ...document,
    content: [
      {
        attachment: { contentType: 'application/pdf', url: binaryUrl, title: 'insurance-card.pdf' },
        format: {
          system: 'http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode',
          code: 'urn:ihe:iti:xds:2017:mimeTypeSufficient',
        },
      },
      { attachment: { url: binaryUrl } },
    ],
  } as DocumentReference;
  const d = ok(mapper.map(scanned as SyncedResource)).resource as DocumentReference;
  expect(JSON.stringify(d)).not.toContain('Binary/');
  expect(d.content![0]!.attachment).toEqual({ contentType: 'application/pdf', title: 'insurance-card.pdf' });
  expect(d.content![0]!.format).toEqual(scanned.content[0]!.format);
  // Nothing left: it says why instead of being an empty (invalid) object.
  expect(d.content![1]!.attachment).toEqual({
    extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'unsupported' }],
  });
});

test('de-identification removes the notes (presentedForm, attachment data and title) and shifts dates with the Patient', () => {
  const mapper = createResourceMapper(deidOptions({ carriedTypes: CARRIED }));
  const r = ok(mapper.map(report as SyncedResource)).resource as DiagnosticReport;
  const d = ok(
    mapper.map({ ...document, content: [{ attachment: { ...document.content[0]!.attachment, title: 'note' } }] } as SyncedResource),
  ).resource as DocumentReference;
  const p = ok(mapper.map(patient as SyncedResource)).resource as Patient;
  expect(r.presentedForm).toBeUndefined();
  expect(d.content).toEqual([{ attachment: { contentType: 'text/plain; charset=utf-8' } }]);
  expect(d.identifier).toBeUndefined();
  const text = JSON.stringify([r, d]);
  for (const line of noteText.split('\n').filter((l) => l.trim().length > 12)) expect(text).not.toContain(line.trim());
  for (const given of patient.name![0]!.given!) expect(text).not.toContain(given);
  // One shift per Patient: the report's and the document's dates move as the birth date does.
  const shift = Date.parse(p.birthDate!) - Date.parse(patient.birthDate!);
  expect(Date.parse(r.effectiveDateTime!.slice(0, 10)) - Date.parse(report.effectiveDateTime!.slice(0, 10))).toBe(shift);
  expect(Date.parse(d.date!.slice(0, 10)) - Date.parse(document.date!.slice(0, 10))).toBe(shift);
  expect(r.subject!.reference).toBe(`Patient/${p.id}`);
  expect(d.subject!.reference).toBe(`Patient/${p.id}`);
});

test("a note without a date, served with OpenEMR's data-missing object in DiagnosticReport.date (no such element), is refused before writing", () => {
  const mapper = createResourceMapper({ ...DEFAULT_OPTIONS, carriedTypes: CARRIED });
  const { effectiveDateTime: _e, issued: _i, ...rest } = report;
  const undated = {
    ...rest,
    date: { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'unknown' }] },
  };
  const outcome = mapper.map(undated as unknown as SyncedResource);
  expect(outcome.ok).toBe(false);
  expect(!outcome.ok && outcome.reason).toMatch(/^FHIR validation failed: DiagnosticReport.*unknown element/);
});
