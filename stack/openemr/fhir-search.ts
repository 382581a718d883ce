/**
 * Patient and Observation search with OpenEMR's semantics (see OPENEMR-API.md, "FHIR REST"):
 * - anything unsupported or malformed makes the whole search answer an EMPTY bundle (never 400);
 * - Patient honours _count (max 200), _offset and _sort=_lastUpdated (tie-break by id);
 * - Observation fans out to sub-services: _count applies to each, _offset and _sort are ignored,
 *   so "paging" Observations returns the same page forever.
 * Candidates come from the narrowest index (ids, patient, lastUpdated window) before filtering.
 */
import {
  conditionWindow,
  DateCondition,
  DateInterval,
  matchesDate,
  parseDateCondition,
  parseFhirDate,
} from './fhir-dates';
import { UUID_SHAPE } from './resource-shape';
import { ResourceStore, StoredRecord } from './resource-store';

/** Thrown while reading parameters; the search then answers an empty bundle. */
class InvalidSearch extends Error {}

export const MAX_COUNT = 200;

export const PATIENT_SEARCH_PARAMS = [
  '_id', 'identifier', 'name', 'birthdate', 'gender', 'address', 'address-city', 'address-postalcode',
  'address-state', 'email', 'family', 'given', 'phone', 'telecom', '_lastUpdated', 'generalPractitioner',
] as const;
export const OBSERVATION_SEARCH_PARAMS = ['patient', 'code', 'category', 'date', '_id', '_lastUpdated'] as const;
const PAGING_PARAMS = ['_count', '_offset', '_sort'];

/** Order in which OpenEMR's Observation sub-services are asked; others follow alphabetically. */
const SUB_SERVICE_ORDER = ['vital-signs', 'laboratory', 'social-history', 'survey', 'sdoh', 'exam', 'procedure', 'imaging', 'therapy', 'activity'];

type Predicate = (rec: StoredRecord) => boolean;

/** Parameter values: repeats are AND, commas inside one value are OR. */
function alternatives(value: string): string[] {
  const parts = value.split(',');
  if (parts.some((p) => p === '')) throw new InvalidSearch('empty value');
  return parts;
}

function dateGroups(values: string[], offsetMinutes: number): DateCondition[][] {
  return values.map((v) =>
    alternatives(v).map((alt) => {
      const c = parseDateCondition(alt, offsetMinutes);
      if (!c) throw new InvalidSearch(`bad date ${alt}`);
      return c;
    }),
  );
}

/** The narrowest [lo, hi) that every AND group allows (each OR group contributes its hull). */
function windowOf(groups: DateCondition[][]): DateInterval {
  let lo = -Infinity;
  let hi = Infinity;
  for (const group of groups) {
    const hull = group.map(conditionWindow).reduce((a, b) => ({ lo: Math.min(a.lo, b.lo), hi: Math.max(a.hi, b.hi) }));
    lo = Math.max(lo, hull.lo);
    hi = Math.min(hi, hull.hi);
  }
  return { lo, hi };
}

function nonNegativeInt(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidSearch(`not a count: ${value}`);
  return Number(value);
}

function checkNames(params: URLSearchParams, allowed: readonly string[]): void {
  for (const name of params.keys()) if (!allowed.includes(name)) throw new InvalidSearch(`unsupported parameter ${name}`);
}

function idGroups(values: string[]): Set<string>[] {
  return values.map((v) => {
    const ids = alternatives(v);
    if (!ids.every((id) => UUID_SHAPE.test(id))) throw new InvalidSearch('ids must be UUIDs');
    return new Set(ids);
  });
}

/** token search: `code`, `system|code`, `|code` (no system), `system|` (any code). */
function tokenMatcher(value: string): (tokens: string[]) => boolean {
  const bar = value.indexOf('|');
  if (bar < 0) return (tokens) => tokens.some((t) => t.slice(t.indexOf('|') + 1) === value);
  const system = value.slice(0, bar);
  const code = value.slice(bar + 1);
  if (code === '') return (tokens) => tokens.some((t) => t.slice(0, t.indexOf('|')) === system);
  return (tokens) => tokens.includes(`${system}|${code}`);
}

function tokenGroups(values: string[], pick: (rec: StoredRecord) => string[]): Predicate[] {
  return values.map((v) => {
    const matchers = alternatives(v).map(tokenMatcher);
    return (rec) => {
      const tokens = pick(rec);
      return matchers.some((m) => m(tokens));
    };
  });
}

function lastUpdatedPredicates(groups: DateCondition[][]): Predicate[] {
  return groups.map((group) => (rec) => group.some((c) => matchesDate(c, rec.lastUpdated)));
}

function sortByLastUpdated(records: StoredRecord[], descending: boolean): StoredRecord[] {
  return records.sort((a, b) => {
    const d = a.lastUpdated - b.lastUpdated || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    return descending ? -d : d;
  });
}

export function searchPatients(store: ResourceStore, params: URLSearchParams, offsetMinutes: number): StoredRecord[] {
  try {
    return runPatientSearch(store, params, offsetMinutes);
  } catch (err) {
    if (err instanceof InvalidSearch) return [];
    throw err;
  }
}

export function searchObservations(store: ResourceStore, params: URLSearchParams, offsetMinutes: number): StoredRecord[] {
  try {
    return runObservationSearch(store, params, offsetMinutes);
  } catch (err) {
    if (err instanceof InvalidSearch) return [];
    throw err;
  }
}

function runPatientSearch(store: ResourceStore, params: URLSearchParams, off: number): StoredRecord[] {
  checkNames(params, [...PATIENT_SEARCH_PARAMS, ...PAGING_PARAMS]);
  const table = store.table('Patient');
  const predicates: Predicate[] = [];
  const ids = idGroups(params.getAll('_id'));
  for (const set of ids) predicates.push((rec) => set.has(rec.id));
  const updated = dateGroups(params.getAll('_lastUpdated'), off);
  predicates.push(...lastUpdatedPredicates(updated));
  predicates.push(...patientContentPredicates(params, off));

  const sort = params.get('_sort');
  if (sort !== null && sort !== '_lastUpdated' && sort !== '-_lastUpdated') throw new InvalidSearch(`cannot sort by ${sort}`);
  const countRaw = params.get('_count');
  const count = countRaw === null ? Infinity : Math.min(nonNegativeInt(countRaw), MAX_COUNT);
  const offsetRaw = params.get('_offset');
  const offset = offsetRaw === null ? 0 : nonNegativeInt(offsetRaw);

  let candidates: Iterable<StoredRecord>;
  let sortedAscending = false;
  if (ids.length > 0) {
    candidates = [...ids[0]].map((id) => table.byId.get(id)).filter((r): r is StoredRecord => !!r);
  } else if (updated.length > 0) {
    const w = windowOf(updated);
    candidates = table.byTime.range(w.lo, w.hi);
    sortedAscending = true;
  } else {
    // No _sort: OpenEMR promises no order; the table's insertion order stands in for the DB's.
    candidates = table.byId.values();
  }
  let matches: StoredRecord[] = [];
  // Unsorted (or already in order) results can stop at the end of the requested page.
  const stopAt = sort === null || (sort === '_lastUpdated' && sortedAscending) ? offset + count : Infinity;
  for (const rec of candidates) {
    if (matches.length >= stopAt) break;
    if (predicates.every((p) => p(rec))) matches.push(rec);
  }
  if (sort === '_lastUpdated' && !sortedAscending) sortByLastUpdated(matches, false);
  if (sort === '-_lastUpdated') sortByLastUpdated(matches, true);
  matches = matches.slice(offset, offset + count);
  return matches;
}

/** The demographic parameters; they need the resource body, parsed only when one is used. */
function patientContentPredicates(params: URLSearchParams, off: number): Predicate[] {
  const out: Predicate[] = [];
  const strings = (values: unknown[]): string[] => values.filter((v): v is string => typeof v === 'string').map((s) => s.toLowerCase());
  type P = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const extractors: Record<string, (p: P) => string[]> = {
    name: (p) => strings((p.name ?? []).flatMap((n: P) => [n.text, n.family, ...(n.given ?? []), ...(n.prefix ?? []), ...(n.suffix ?? [])])),
    family: (p) => strings((p.name ?? []).map((n: P) => n.family)),
    given: (p) => strings((p.name ?? []).flatMap((n: P) => n.given ?? [])),
    address: (p) => strings((p.address ?? []).flatMap((a: P) => [...(a.line ?? []), a.city, a.state, a.postalCode, a.country, a.text])),
    'address-city': (p) => strings((p.address ?? []).map((a: P) => a.city)),
    'address-state': (p) => strings((p.address ?? []).map((a: P) => a.state)),
    'address-postalcode': (p) => strings((p.address ?? []).map((a: P) => a.postalCode)),
    telecom: (p) => strings((p.telecom ?? []).map((t: P) => t.value)),
    email: (p) => strings((p.telecom ?? []).filter((t: P) => t.system === 'email').map((t: P) => t.value)),
    phone: (p) => strings((p.telecom ?? []).filter((t: P) => t.system === 'phone').map((t: P) => t.value)),
  };
  const parse = (rec: StoredRecord): P => JSON.parse(rec.json) as P;
  for (const [name, extract] of Object.entries(extractors)) {
    for (const v of params.getAll(name)) {
      const wanted = alternatives(v).map((s) => s.toLowerCase());
      // FHIR string search: case-insensitive "starts with".
      out.push((rec) => extract(parse(rec)).some((s) => wanted.some((w) => s.startsWith(w))));
    }
  }
  for (const v of params.getAll('gender')) {
    const wanted = alternatives(v);
    out.push((rec) => wanted.includes(parse(rec).gender));
  }
  for (const v of params.getAll('identifier')) {
    const matchers = alternatives(v).map(tokenMatcher);
    out.push((rec) => {
      const tokens = (parse(rec).identifier ?? []).map((i: P) => `${i.system ?? ''}|${i.value ?? ''}`);
      return matchers.some((m) => m(tokens));
    });
  }
  for (const v of params.getAll('generalPractitioner')) {
    const wanted = alternatives(v).map((s) => (s.includes('/') ? s : `Practitioner/${s}`));
    out.push((rec) => (parse(rec).generalPractitioner ?? []).some((r: P) => wanted.includes(r.reference)));
  }
  for (const group of dateGroups(params.getAll('birthdate'), off)) {
    out.push((rec) => {
      const birth = parse(rec).birthDate;
      const at = typeof birth === 'string' ? parseFhirDate(birth, off)?.lo : undefined;
      return at !== undefined && group.some((c) => matchesDate(c, at));
    });
  }
  return out;
}

function* recordsById(byId: Map<string, StoredRecord>, ...idLists: Iterable<string>[]): Generator<StoredRecord> {
  for (const ids of idLists) {
    for (const id of ids) {
      const rec = byId.get(id);
      if (rec) yield rec;
    }
  }
}

function runObservationSearch(store: ResourceStore, params: URLSearchParams, off: number): StoredRecord[] {
  checkNames(params, [...OBSERVATION_SEARCH_PARAMS, ...PAGING_PARAMS]);
  const table = store.table('Observation');
  const predicates: Predicate[] = [];
  const ids = idGroups(params.getAll('_id'));
  for (const set of ids) predicates.push((rec) => set.has(rec.id));
  const patients = params.getAll('patient').map((v) =>
    new Set(
      alternatives(v).map((ref) => {
        const id = ref.startsWith('Patient/') ? ref.slice(8) : ref;
        if (!UUID_SHAPE.test(id)) throw new InvalidSearch('patient must be a UUID');
        return id;
      }),
    ),
  );
  for (const set of patients) predicates.push((rec) => rec.patientId !== undefined && set.has(rec.patientId));
  predicates.push(...tokenGroups(params.getAll('category'), (rec) => rec.categoryTokens ?? []));
  predicates.push(...tokenGroups(params.getAll('code'), (rec) => rec.codeTokens ?? []));
  for (const group of dateGroups(params.getAll('date'), off)) {
    predicates.push((rec) => rec.effective !== undefined && group.some((c) => matchesDate(c, rec.effective as number)));
  }
  const updated = dateGroups(params.getAll('_lastUpdated'), off);
  predicates.push(...lastUpdatedPredicates(updated));
  const countRaw = params.get('_count');
  const perSubService = countRaw === null ? Infinity : Math.min(nonNegativeInt(countRaw), MAX_COUNT);
  // _offset and _sort are read (so they are not "unsupported") and then ignored, as OpenEMR does.
  const offsetRaw = params.get('_offset');
  if (offsetRaw !== null) nonNegativeInt(offsetRaw);

  // Start from whichever index yields the fewest candidates (generators: nothing is copied).
  let best: { size: number; get: () => Iterable<StoredRecord> } = { size: table.byId.size, get: () => table.byId.values() };
  if (ids.length > 0) {
    const list = [...ids[0]];
    if (list.length < best.size) best = { size: list.length, get: () => recordsById(table.byId, list) };
  }
  if (patients.length > 0) {
    const sets = [...patients[0]].map((id) => table.byPatient.get(id) ?? new Set<string>());
    const size = sets.reduce((n, s) => n + s.size, 0);
    if (size < best.size) best = { size, get: () => recordsById(table.byId, ...sets) };
  }
  if (updated.length > 0) {
    const w = windowOf(updated);
    const size = table.byTime.rangeSize(w.lo, w.hi);
    if (size < best.size) best = { size, get: () => table.byTime.range(w.lo, w.hi) };
  }

  if (perSubService === 0) return [];
  const groups = new Map<string, StoredRecord[]>();
  // Once every sub-service the table holds has a full page, nothing later can be returned.
  const subServices = store.subServiceCount();
  let full = 0;
  for (const rec of best.get()) {
    if (!predicates.every((p) => p(rec))) continue;
    const key = rec.subService ?? '';
    let list = groups.get(key);
    if (!list) groups.set(key, (list = []));
    if (list.length < perSubService) {
      list.push(rec);
      if (list.length === perSubService && ++full >= subServices) break;
    }
  }
  const rank = (k: string) => {
    const i = SUB_SERVICE_ORDER.indexOf(k);
    return i >= 0 ? i : k === '' ? Number.MAX_SAFE_INTEGER : SUB_SERVICE_ORDER.length;
  };
  const keys = [...groups.keys()].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
  return keys.flatMap((k) => groups.get(k) as StoredRecord[]);
}
