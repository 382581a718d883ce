/**
 * Deterministic benchmark data: Patients, Observations and every other patient-scoped type the run
 * carries (Encounter, Condition, and whatever rows resource-types.ts gains) cloned from the shapes of
 * the shared Synthea sample (the same fields, codes and value types the connector meets), with new
 * ids, references to the same Patient's generated resources, and lastUpdated spread over several
 * years. Observations are counted out (--observations); the other types come at the sample's own
 * rate per Patient, so the mix is the sample's. The same seed always gives the same resources.
 *
 * When the directory types are carried, a practice's directory comes first (the shapes of
 * data/openemr-directory): one Practitioner per PATIENTS_PER_PRACTITIONER Patients, one facility
 * (an Organization and its Location) per PRACTITIONERS_PER_FACILITY of them, and the Locations
 * OpenEMR's LocationService serves beside the facilities: a "Home Address" per user and per Patient
 * with an address. Each Patient is seen at one facility; its Encounters point at that facility's
 * Organization and Location and at one of the Practitioners.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { seededRandom } from '../../stack/faults';
import { defaultDataDir, defaultDirectoryDir } from '../../stack/openemr/repo-paths';
import { RESOURCE_TYPES, specOf } from '../../src/sync/resource-types';

export type Json = Record<string, unknown> & { resourceType: string; id: string };

export interface Templates {
  patients: Json[];
  observations: Json[];
  /** The sample's other patient-scoped types of the table (Encounter, Condition, ...), by type. */
  others: Record<string, Json[]>;
  /** How many of each of `others` the sample holds per Patient: the rate the bench generates them at. */
  perPatient: Record<string, number>;
  /** The directory's shapes (data/openemr-directory): Organizations, Practitioners, facility and home Locations. */
  directory: { Organization: Json[]; Practitioner: Json[]; facility: Json[]; home: Json[] };
}

/** Patients per Practitioner (a provider's panel, specialists included, in an outpatient practice). */
export const PATIENTS_PER_PRACTITIONER = 500;
/** Practitioners per facility (a clinic site). */
export const PRACTITIONERS_PER_FACILITY = 5;
export const DIRECTORY_TYPES = ['Organization', 'Practitioner', 'Location'] as const;

/** How large the generated directory is, and the seed that names its ids. */
export interface DirectoryPlan {
  seed: number;
  practitioners: number;
  facilities: number;
}

export function loadTemplates(dir: string = defaultDataDir()): Templates {
  const read = (type: string): Json[] => {
    const file = path.join(dir, `${type}.ndjson`);
    if (!fs.existsSync(file)) return [];
    return fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Json)
      .filter((r) => r.resourceType === type);
  };
  const patients = read('Patient');
  const observations = read('Observation');
  if (patients.length === 0 || observations.length === 0) throw new Error(`no Patient/Observation sample data in ${dir}`);
  const readDirectory = (type: string): Json[] =>
    fs
      .readFileSync(path.join(defaultDirectoryDir(), `${type}.ndjson`), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Json);
  const locations = readDirectory('Location');
  const directory = {
    Organization: readDirectory('Organization'),
    Practitioner: readDirectory('Practitioner'),
    facility: locations.filter((l) => l.identifier),
    home: locations.filter((l) => !l.identifier),
  };
  const others: Record<string, Json[]> = {};
  const perPatient: Record<string, number> = {};
  for (const spec of RESOURCE_TYPES) {
    if (spec.type === 'Patient' || spec.type === 'Observation' || !spec.read.patientScoped) continue;
    const list = read(spec.type);
    if (list.length === 0) continue;
    others[spec.type] = list;
    perPatient[spec.type] = list.length / patients.length;
  }
  return { patients, observations, others, perPatient, directory };
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
  /** How many of each other generated type (Encounter, Condition, ...) this patient has. */
  others: Record<string, number>;
  /** Seed of this patient's Observation stream (so they can be regenerated lazily). */
  seed: number;
  /** Data seed and position, which name the ids. */
  name: string;
  /** The practice's directory, when its types are generated (the same object for every Patient). */
  directory?: DirectoryPlan;
  /** The facility this Patient is seen at (an index into the directory's facilities). */
  facility: number;
}

/**
 * Plans `patients` Patients sharing `observations` Observations (uneven: 0.5x to 1.5x the mean,
 * totals exact). Returns the Patients; their Observations come from `observationsOf`.
 */
export function planPatients(
  templates: Templates,
  patients: number,
  observations: number,
  seed: number,
  /** Carried types besides Patient and Observation to generate (those the sample has); default none. */
  types: readonly string[] = [],
): GeneratedPatient[] {
  const random = seededRandom(seed);
  const weights = Array.from({ length: patients }, () => 0.5 + random());
  const sum = weights.reduce((a, b) => a + b, 0);
  const counts = weights.map((w) => Math.floor((w / sum) * observations));
  let rest = observations - counts.reduce((a, b) => a + b, 0);
  for (let i = 0; rest > 0; i = (i + 1) % patients, rest--) counts[i]!++;
  const generated = types.filter((t) => templates.others[t]);
  const practitioners = Math.max(1, Math.ceil(patients / PATIENTS_PER_PRACTITIONER));
  const directory: DirectoryPlan | undefined = DIRECTORY_TYPES.every((t) => types.includes(t))
    ? { seed, practitioners, facilities: Math.max(1, Math.ceil(practitioners / PRACTITIONERS_PER_FACILITY)) }
    : undefined;
  return counts.map((count, i) => {
    const template = templates.patients[i % templates.patients.length]!;
    const id = namedUuid(seed, 'Patient', i);
    const lastUpdated = instant(START_MS + random() * 7 * YEAR_MS);
    const patient = { ...structuredClone(template), id, meta: { ...((template.meta as object) ?? {}), lastUpdated } } as Json;
    // The other types follow the same weight as the Observations: a busy Patient has more of each.
    const others = Object.fromEntries(generated.map((t) => [t, Math.round(weights[i]! * templates.perPatient[t]!)]));
    const facility = directory ? i % directory.facilities : 0;
    return {
      patient,
      observations: count,
      others,
      seed: Math.floor(random() * 2 ** 31),
      name: `${seed}:${i}`,
      ...(directory ? { directory } : {}),
      facility,
    };
  });
}

/** How much data a run generates, and from which seed (all that is needed to generate it again). */
export interface BenchDataPlan {
  patients: number;
  observations: number;
  seed: number;
  /** The carried types (SYNC_RESOURCE_TYPES): those besides Patient and Observation are generated too. */
  types?: string[];
}

export function planOf(templates: Templates, plan: BenchDataPlan): GeneratedPatient[] {
  return planPatients(templates, plan.patients, plan.observations, plan.seed, plan.types ?? []);
}

/** Every generated resource in the order the connector reads them (the directory, Patients in pages, then theirs). */
export function* allResources(templates: Templates, planned: GeneratedPatient[]): Generator<Json> {
  yield* directoryOf(templates, planned);
  for (const p of planned) {
    yield p.patient;
    yield* dependentsOf(templates, p);
  }
}

/** A Patient's resources of every generated type, in reference order (an Encounter before what points at it). */
export function* dependentsOf(templates: Templates, planned: GeneratedPatient): Generator<Json> {
  const types = ['Observation', ...Object.keys(planned.others)].sort((a, b) => specOf(a).rank - specOf(b).rank);
  for (const type of types) yield* type === 'Observation' ? observationsOf(templates, planned) : othersOf(templates, planned, type);
}

/** The id of the directory's `type` row number `i` (facility Locations first, then the homes). */
const directoryId = (plan: DirectoryPlan, type: string, i: number): string => namedUuid(plan.seed, 'directory', type, i);

/**
 * The practice's directory (none unless its types are generated), before anything points at it: the
 * Organizations, then the Practitioners, then the Locations (which point at the first Organization,
 * the primary business entity). The same plan always gives the same resources.
 */
export function* directoryOf(templates: Templates, planned: GeneratedPatient[]): Generator<Json> {
  const plan = planned[0]?.directory;
  if (!plan) return;
  const t = templates.directory;
  const stamp = (r: Json, type: string, i: number, seconds: number): Json => {
    r.id = directoryId(plan, type, i);
    r.meta = { ...((r.meta as object) ?? {}), lastUpdated: instant(START_MS + seconds * 1000) };
    return r;
  };
  const managingOrganization = { reference: `Organization/${directoryId(plan, 'Organization', 0)}`, type: 'Organization' };
  for (let i = 0; i < plan.facilities; i++) yield stamp(structuredClone(t.Organization[i % t.Organization.length]!), 'Organization', i, i);
  for (let i = 0; i < plan.practitioners; i++)
    yield stamp(structuredClone(t.Practitioner[i % t.Practitioner.length]!), 'Practitioner', i, i);
  let n = 0;
  for (let i = 0; i < plan.facilities; i++)
    yield { ...stamp(structuredClone(t.facility[i % t.facility.length]!), 'Location', n++, i), managingOrganization };
  for (let i = 0; i < plan.practitioners; i++)
    yield { ...stamp(structuredClone(t.home[i % t.home.length]!), 'Location', n++, i), managingOrganization };
  // OpenEMR's LocationService serves every Patient's address as a "Home Address" Location too.
  const home = t.home.find((l) => l.address) ?? t.home[0]!;
  for (const p of planned) {
    const address = (p.patient.address as Json[] | undefined)?.[0];
    if (!address) continue;
    const r = stamp(structuredClone(home), 'Location', n++, 0);
    r.meta = { ...((r.meta as object) ?? {}), lastUpdated: (p.patient.meta as { lastUpdated: string }).lastUpdated };
    const { line, city, state, postalCode, country } = address as Record<string, unknown>;
    yield {
      ...r,
      address: JSON.parse(JSON.stringify({ type: 'physical', line, city, state, postalCode, country })) as Json,
      managingOrganization,
    };
  }
}

/**
 * The reference a generated resource of this Patient makes to `type`: the Patient itself, one of
 * the Patient's generated resources of that type, its facility's Organization or Location, one of
 * the directory's Practitioners (by `salt`, the resource's id), or undefined when none is generated.
 */
function referenceTo(planned: GeneratedPatient, type: string, random: () => number, salt = ''): { reference: string } | undefined {
  if (type === 'Patient') return { reference: `Patient/${planned.patient.id}` };
  const plan = planned.directory;
  if (plan && (type === 'Organization' || type === 'Location'))
    return { reference: `${type}/${directoryId(plan, type, planned.facility)}` };
  if (plan && type === 'Practitioner')
    return { reference: `Practitioner/${directoryId(plan, type, hashOf(`${salt}:Practitioner`) % plan.practitioners)}` };
  const count = planned.others[type];
  if (!count) return undefined;
  return { reference: `${type}/${namedUuid(planned.name, type, Math.floor(random() * count))}` };
}

/** One Patient's resources of a generated type other than Observation, cloned from the sample's shapes. */
export function* othersOf(templates: Templates, planned: GeneratedPatient, type: string): Generator<Json> {
  const list = templates.others[type]!;
  const random = seededRandom(planned.seed ^ hashOf(type));
  const start = Date.parse(String((planned.patient.meta as { lastUpdated: string }).lastUpdated)) - 2 * YEAR_MS;
  for (let i = 0; i < (planned.others[type] ?? 0); i++) {
    const r = structuredClone(list[Math.floor(random() * list.length)]!);
    r.id = namedUuid(planned.name, type, i);
    for (const ref of specOf(type).references) {
      const target = ref.type === type ? undefined : referenceTo(planned, ref.type, random, r.id);
      repoint(r, ref.element.split('.'), target);
    }
    const when = start + random() * 4 * YEAR_MS;
    r.meta = { ...((r.meta as object) ?? {}), lastUpdated: instant(when) };
    yield r;
  }
}

/**
 * Re-points the references the template holds at a (dotted, list-walking) element path, such as
 * `context.encounter` or `result`, at `target`, or removes them when there is none: a generated
 * resource never points at a resource the data set does not hold. A reference the template lacks
 * stays absent, so the shapes stay the sample's.
 */
function repoint(node: unknown, path: readonly string[], target: { reference: string } | undefined): void {
  if (Array.isArray(node)) {
    for (const item of node) repoint(item, path, target);
    return;
  }
  if (!node || typeof node !== 'object') return;
  const o = node as Record<string, unknown>;
  const [key, ...rest] = path as [string, ...string[]];
  if (!(key in o)) return;
  if (rest.length > 0) return repoint(o[key], rest, target);
  if (target === undefined) delete o[key];
  else o[key] = Array.isArray(o[key]) ? [target] : target;
}

function hashOf(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32LE(0) & 0x7fffffff;
}

/** The Observations of one planned Patient, cloned from the sample's Observation shapes. */
export function* observationsOf(templates: Templates, planned: GeneratedPatient): Generator<Json> {
  const random = seededRandom(planned.seed);
  const pick = seededRandom(planned.seed ^ hashOf('Observation'));
  const pid = planned.patient.id;
  const start = Date.parse(String((planned.patient.meta as { lastUpdated: string }).lastUpdated)) - 2 * YEAR_MS;
  for (let i = 0; i < planned.observations; i++) {
    const template = templates.observations[Math.floor(random() * templates.observations.length)]!;
    const o = structuredClone(template);
    o.id = namedUuid(planned.name, 'Observation', i);
    o.subject = { reference: `Patient/${pid}` };
    // Pointing at one of the Patient's generated Encounters when they are generated (their own
    // stream of choices keeps the Observations' the same either way).
    if (o.encounter)
      o.encounter = referenceTo(planned, 'Encounter', pick) ?? { reference: `Encounter/${namedUuid(planned.name, 'Encounter', i)}` };
    const when = start + random() * 4 * YEAR_MS;
    if ('effectiveDateTime' in o) o.effectiveDateTime = instant(when);
    if ('issued' in o) o.issued = new Date(Math.floor(when)).toISOString();
    o.meta = { ...((o.meta as object) ?? {}), lastUpdated: instant(when + random() * 30 * 24 * 3600 * 1000) };
    yield o;
  }
}
