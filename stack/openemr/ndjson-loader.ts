/**
 * Loads a directory of Bulk FHIR NDJSON (`Patient.ndjson`, `Observation.ndjson`, also split names
 * like `Observation.000.ndjson`; every type of standin-types.ts), one line at a time so a million-line
 * file never sits in memory as one string. Types load in that list's reference order, so Observation
 * subjects resolve to known Patients.
 */
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { type DirectoryType, FhirResource, isDirectoryType, SUPPORTED_TYPES, SupportedType } from './resource-shape';
import { ResourceStore } from './resource-store';

export interface LoadReport {
  dir: string;
  /** Per type; the directory types only when a directory was loaded (or the data has their files). */
  loaded: Record<Exclude<SupportedType, DirectoryType>, number> & Partial<Record<DirectoryType, number>>;
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

export interface LoadOptions {
  /**
   * A folder of Practitioner, Organization and Location NDJSON (data/openemr-directory) with a
   * links.json that names the row each Synthea conditional reference stands for: loaded first, so
   * Encounters point at Practitioner/Location/Organization as OpenEMR's do.
   */
  directoryDir?: string;
}

export async function loadNdjsonDirectory(store: ResourceStore, dir: string, options: LoadOptions = {}): Promise<LoadReport> {
  const started = Date.now();
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`OpenEMR stand-in data directory not found: ${dir}`);
  const loaded: Record<string, number> = Object.fromEntries(SUPPORTED_TYPES.filter((t) => !isDirectoryType(t)).map((t) => [t, 0]));
  const report: LoadReport = { dir, loaded: loaded as LoadReport['loaded'], skipped: 0, ms: 0 };
  const directory = options.directoryDir;
  if (directory !== undefined) {
    if (!fs.existsSync(directory) || !fs.statSync(directory).isDirectory())
      throw new Error(`OpenEMR stand-in directory data not found: ${directory}`);
    const links = path.join(directory, 'links.json');
    if (fs.existsSync(links)) store.setLinks(JSON.parse(fs.readFileSync(links, 'utf8')) as Record<string, string>);
  }
  // Reference order (SUPPORTED_TYPES, standin-types.ts): what is pointed at first, so every urn:uuid
  // reference resolves to its type. Directory types come from the directory folder, then the data's.
  const order = SUPPORTED_TYPES.flatMap((type) => [
    ...(isDirectoryType(type) && directory !== undefined ? [{ type, from: directory }] : []),
    { type, from: dir },
  ]);
  for (const { type, from } of order) {
    const files = filesFor(from, type);
    if (files.length > 0 || (from === directory && from !== undefined)) loaded[type] ??= 0;
    for (const file of files) {
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
        loaded[type] = (loaded[type] ?? 0) + 1;
      }
    }
  }
  store.finishImport();
  report.ms = Date.now() - started;
  return report;
}
