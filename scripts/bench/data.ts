/**
 * Deterministic benchmark data: Patients and Observations cloned from the shapes of the shared
 * Synthea sample (the same fields, codes and value types the connector meets), with new ids, subject
 * references `Patient/<id>` and lastUpdated spread over several years. The same seed always gives
 * the same resources, so runs are comparable.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { seededRandom } from '../../stack/faults';
import { defaultDataDir } from '../../stack/openemr/repo-paths';

export type Json = Record<string, unknown> & { resourceType: string; id: string };

export interface Templates {
  patients: Json[];
  observations: Json[];
}

export function loadTemplates(dir: string = defaultDataDir()): Templates {
  const read = (type: string): Json[] =>
    fs
      .readFileSync(path.join(dir, `${type}.ndjson`), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Json)
      .filter((r) => r.resourceType === type);
  const patients = read('Patient');
  const observations = read('Observation');
  if (patients.length === 0 || observations.length === 0) throw new Error(`no Patient/Observation sample data in ${dir}`);
  return { patients, observations };
}

/**
 * A v4-shaped UUID named by `parts` (seed and position): unique per name, the same on every run.
 * (Drawn from the 32-bit seeded generator instead, a million ids would collide: its streams overlap.)
 */
export function namedUuid(...parts: Array<string | number>): string {
  const h = createHash('sha256').update(parts.join(':')).digest('hex').split('');
  h[12] = '4';
  h[16] = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  const s = h.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20, 32)}`;
}

const YEAR_MS = 365.25 * 24 * 3600 * 1000;
const START_MS = Date.parse('2018-01-01T00:00:00Z');

function instant(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

export interface GeneratedPatient {
  patient: Json;
  /** How many Observations this patient has. */
  observations: number;
  /** Seed of this patient's Observation stream (so they can be regenerated lazily). */
  seed: number;
  /** Data seed and position, which name the ids. */
  name: string;
}

/**
 * Plans `patients` Patients sharing `observations` Observations (uneven: 0.5x to 1.5x the mean,
 * totals exact). Returns the Patients; their Observations come from `observationsOf`.
 */
export function planPatients(templates: Templates, patients: number, observations: number, seed: number): GeneratedPatient[] {
  const random = seededRandom(seed);
  const weights = Array.from({ length: patients }, () => 0.5 + random());
  const sum = weights.reduce((a, b) => a + b, 0);
  const counts = weights.map((w) => Math.floor((w / sum) * observations));
  let rest = observations - counts.reduce((a, b) => a + b, 0);
  for (let i = 0; rest > 0; i = (i + 1) % patients, rest--) counts[i]!++;
  return counts.map((count, i) => {
    const template = templates.patients[i % templates.patients.length]!;
    const id = namedUuid(seed, 'Patient', i);
    const lastUpdated = instant(START_MS + random() * 7 * YEAR_MS);
    const patient = { ...structuredClone(template), id, meta: { ...((template.meta as object) ?? {}), lastUpdated } } as Json;
    return { patient, observations: count, seed: Math.floor(random() * 2 ** 31), name: `${seed}:${i}` };
  });
}

/** How much data a run generates, and from which seed (all that is needed to generate it again). */
export interface BenchDataPlan {
  patients: number;
  observations: number;
  seed: number;
}

export function planOf(templates: Templates, plan: BenchDataPlan): GeneratedPatient[] {
  return planPatients(templates, plan.patients, plan.observations, plan.seed);
}

/** Every generated resource in the order the connector reads them (Patients in pages, then theirs). */
export function* allResources(templates: Templates, planned: GeneratedPatient[]): Generator<Json> {
  for (const p of planned) {
    yield p.patient;
    yield* observationsOf(templates, p);
  }
}

/** The Observations of one planned Patient, cloned from the sample's Observation shapes. */
export function* observationsOf(templates: Templates, planned: GeneratedPatient): Generator<Json> {
  const random = seededRandom(planned.seed);
  const pid = planned.patient.id;
  const start = Date.parse(String((planned.patient.meta as { lastUpdated: string }).lastUpdated)) - 2 * YEAR_MS;
  for (let i = 0; i < planned.observations; i++) {
    const template = templates.observations[Math.floor(random() * templates.observations.length)]!;
    const o = structuredClone(template);
    o.id = namedUuid(planned.name, 'Observation', i);
    o.subject = { reference: `Patient/${pid}` };
    if (o.encounter) o.encounter = { reference: `Encounter/${namedUuid(planned.name, 'Encounter', i)}` };
    const when = start + random() * 4 * YEAR_MS;
    if ('effectiveDateTime' in o) o.effectiveDateTime = instant(when);
    if ('issued' in o) o.issued = new Date(Math.floor(when)).toISOString();
    o.meta = { ...((o.meta as object) ?? {}), lastUpdated: instant(when + random() * 30 * 24 * 3600 * 1000) };
    yield o;
  }
}
