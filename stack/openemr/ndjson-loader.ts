/**
 * Loads a directory of Bulk FHIR NDJSON (`Patient.ndjson`, `Observation.ndjson`, also split names
 * like `Observation.000.ndjson`; also Encounter, Condition, Immunization, Procedure, MedicationRequest
 * and AllergyIntolerance), one line at a time so a million-line file never sits in memory
 * as one string. Patients go first so Observation subjects resolve to known Patients.
 */
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { FhirResource, SUPPORTED_TYPES, SupportedType } from './resource-shape';
import { MEDICAL_TYPES } from './services/medical';
import { ResourceStore } from './resource-store';

export interface LoadReport {
  dir: string;
  loaded: Record<SupportedType, number>;
  /** Lines that were not JSON or not a resource of the file's type. */
  skipped: number;
  ms: number;
}

function filesFor(dir: string, type: SupportedType): string[] {
  return fs
    .readdirSync(dir)
    .filter((name) => name.endsWith('.ndjson') && name.split('.').includes(type))
    .sort()
    .map((name) => path.join(dir, name));
}

export async function loadNdjsonDirectory(store: ResourceStore, dir: string): Promise<LoadReport> {
  const started = Date.now();
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`OpenEMR stand-in data directory not found: ${dir}`);
  const report: LoadReport = {
    dir,
    loaded: Object.fromEntries(SUPPORTED_TYPES.map((t) => [t, 0])) as LoadReport['loaded'],
    skipped: 0,
    ms: 0,
  };
  // Reference order: what is pointed at first, so every urn:uuid reference resolves to its type.
  for (const type of [
    'Patient',
    'Encounter',
    'Condition',
    'Observation',
    ...MEDICAL_TYPES,
    'DiagnosticReport',
    'DocumentReference',
  ] as const) {
    for (const file of filesFor(dir, type)) {
      const lines = readline.createInterface({ input: fs.createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
      for await (const line of lines) {
        if (line.trim() === '') continue;
        let resource: FhirResource;
        try {
          resource = JSON.parse(line) as FhirResource;
        } catch {
          report.skipped++;
          continue;
        }
        if (resource?.resourceType !== type || typeof resource.id !== 'string') {
          report.skipped++;
          continue;
        }
        store.importResource(resource);
        report.loaded[type]++;
      }
    }
  }
  store.finishImport();
  report.ms = Date.now() - started;
  return report;
}
