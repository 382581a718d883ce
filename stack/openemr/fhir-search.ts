/**
 * Patient and Observation search with OpenEMR's semantics (see OPENEMR-API.md, "FHIR REST"):
 * - the query is read the PHP way (php-query.ts): one value per key, the last; arrays and commas OR;
 * - anything unsupported or malformed makes the whole search answer an EMPTY bundle (never 400);
 * - Patient honours _count (intval, max 200, 0 or junk = no limit), _offset and _sort by the fields
 *   PatientService allows, with NO tie-break: equal keys come in row (insertion) order, as MySQL
 *   returns them; an unknown _sort field is ignored (ResourceServiceSearchTrait::createSortParameter);
 * - Observation fans out to sub-services: _count applies to each, _offset and _sort are ignored,
 *   so "paging" Observations returns the same page forever;
 * - per release (versions.ts): 7.0.2 empties any search carrying _count/_offset/_sort, and its
 *   Observation service has no _lastUpdated.
 * Candidates come from the narrowest index (ids, patient, lastUpdated window) before filtering.
 */
import { conditionWindow, DateCondition, DateInterval, matchesDate, parseDateCondition, parseFhirDate } from './fhir-dates';
import { alternativesOf, PhpQueryValue, phpIntval } from './php-query';
import { UUID_SHAPE } from './resource-shape';
import { MEDICAL_SERVICES } from './services/medical';
import { ResourceStore, StoredRecord } from './resource-store';
import type { OpenEmrVersionTraits } from './versions';
import { REPORT_CODE_PARAM, REPORT_SUB_SERVICES, reportSubServiceFor } from './report-types';
import { type ClinicalType, isMedicalType, isReportType, SEARCH_PARAMS } from './standin-types';

/** Thrown while reading parameters; the search then answers an empty bundle. */
export class InvalidSearch extends Error {}

export const MAX_COUNT = 200;

export const PAGING_PARAMS = ['_count', '_offset', '_sort'];

/** Order in which OpenEMR's Observation sub-services are asked; others follow alphabetically. */
const SUB_SERVICE_ORDER = [
  'vital-signs',
  'laboratory',
  'social-history',
  'survey',
  'sdoh',
  'exam',
  'procedure',
  'imaging',
  'therapy',
  'activity',
];

/** The query after PHP parsing: one value per key. */
export type SearchQuery = Map<string, PhpQueryValue>;

export interface SearchContext {
  /** The server's UTC offset now (search values are converted with today's offset, as date('P')). */
  offsetMinutes: number;
  traits: OpenEmrVersionTraits;
  /**
   * Order ties of a sorted, limited Patient search differently for each LIMIT window, as MySQL's
   * filesort may (a priority queue for small limits): `_offset` paging inside a crowded second then
   * skips and repeats rows. Default false: ties in row order.
   */
  unstableTies?: boolean;
}

export type Predicate = (rec: StoredRecord) => boolean;

/** One parameter's alternatives (array elements and comma parts), all OR-ed; none may be empty. */
export function alternatives(value: PhpQueryValue): string[] {
  const parts = alternativesOf(value);
  if (parts.some((p) => p === '')) throw new InvalidSearch('empty value');
  return parts;
}

/**
 * One date parameter's OR group, in local wall-clock seconds: the value is converted to the server's
 * local time with today's offset (adjustTimezoneToLocalTime), as the rows it is compared with are.
 */
export function dateGroup(value: PhpQueryValue | undefined, offsetMinutes: number): DateCondition[] | undefined {
  if (value === undefined) return undefined;
  const shift = offsetMinutes * 60;
  return alternatives(value).map((alt) => {
    const c = parseDateCondition(alt, offsetMinutes);
    if (!c) throw new InvalidSearch(`bad date ${alt}`);
    return { prefix: c.prefix, interval: { lo: c.interval.lo + shift, hi: c.interval.hi + shift } };
  });
}

/** The [lo, hi) hull of an OR group: the only candidates it can match. */
export function windowOf(group: DateCondition[]): DateInterval {
  return group.map(conditionWindow).reduce((a, b) => ({ lo: Math.min(a.lo, b.lo), hi: Math.max(a.hi, b.hi) }));
}

/**
 * _count as SearchQueryConfig reads it: intval, capped at QueryPagination::MAX_LIMIT; 0, junk or a
 * negative number is "no limit" (buildQueryPaginationClause adds LIMIT only when it is > 0).
 */
function countOf(query: SearchQuery): number {
  const n = Math.min(phpIntval(query.get('_count')), MAX_COUNT);
  return n > 0 ? n : Infinity;
}

/** _offset as intval; a negative one makes QueryPagination throw, which ends as an empty answer. */
function offsetOf(query: SearchQuery): number {
  const n = phpIntval(query.get('_offset'));
  if (n < 0) throw new InvalidSearch('negative offset');
  return n;
}

export function checkNames(query: SearchQuery, allowed: readonly string[]): void {
  for (const name of query.keys()) if (!allowed.includes(name)) throw new InvalidSearch(`unsupported parameter ${name}`);
}

/** The `patient` parameter's ids (`Patient/<uuid>` or `<uuid>`, OR-ed); anything else is an invalid search. */
function patientSet(value: PhpQueryValue | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  return new Set(
    alternatives(value).map((ref) => {
      const id = ref.startsWith('Patient/') ? ref.slice(8) : ref;
      if (!UUID_SHAPE.test(id)) throw new InvalidSearch('patient must be a UUID');
      return id;
    }),
  );
}

export function idSet(value: PhpQueryValue | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const ids = alternatives(value);
  if (!ids.every((id) => UUID_SHAPE.test(id))) throw new InvalidSearch('ids must be UUIDs');
  return new Set(ids);
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

function tokenPredicate(value: PhpQueryValue | undefined, pick: (rec: StoredRecord) => string[]): Predicate[] {
  if (value === undefined) return [];
  const matchers = alternatives(value).map(tokenMatcher);
  return [
    (rec) => {
      const tokens = pick(rec);
      return matchers.some((m) => m(tokens));
    },
  ];
}

/** A NULL lastUpdated column never matches a _lastUpdated condition (SQL comparison with NULL). */
export function lastUpdatedPredicate(group: DateCondition[] | undefined): Predicate[] {
  if (!group) return [];
  return [(rec) => rec.lastUpdated !== null && group.some((c) => matchesDate(c, rec.lastUpdated as number))];
}

/** A deterministic shuffle of rows that changes with the LIMIT window (integer mixing, 32 bits). */
function tieRank(seq: number, window: number): number {
  let h = Math.imul(seq ^ Math.imul(window, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Row (insertion) order: what MySQL gives without ORDER BY, and among ties of one. */
export const byRow = (a: StoredRecord, b: StoredRecord) => a.seq - b.seq;

/** 7.0.2: a paging parameter falls through to "unsupported field" and empties the answer (openemr#8129). */
export function pagingEmpties(query: SearchQuery, traits: OpenEmrVersionTraits): boolean {
  return traits.pagingEmptiesSearch && PAGING_PARAMS.some((p) => query.has(p));
}

export function searchPatients(store: ResourceStore, query: SearchQuery, ctx: SearchContext): StoredRecord[] {
  try {
    if (pagingEmpties(query, ctx.traits)) return [];
    return runPatientSearch(store, query, ctx.offsetMinutes, ctx.unstableTies ?? false);
  } catch (err) {
    if (err instanceof InvalidSearch) return [];
    throw err;
  }
}

export function searchObservations(store: ResourceStore, query: SearchQuery, ctx: SearchContext): StoredRecord[] {
  try {
    if (pagingEmpties(query, ctx.traits)) return [];
    // Before 7.0.2.2 the Observation services list no _lastUpdated: an unsupported field.
    if (!ctx.traits.observationLastUpdated && query.has('_lastUpdated')) return [];
    return runObservationSearch(store, query, ctx.offsetMinutes);
  } catch (err) {
    if (err instanceof InvalidSearch) return [];
    throw err;
  }
}

type SortKey = (rec: StoredRecord) => number | string | null;
/**
 * Patient sort fields OpenEMR can map to an allowed column (PatientService::ALLOWED_SORT_COLUMNS);
 * any other field is skipped without a word. A NULL sorts first ascending, as in MySQL.
 */
const PATIENT_SORT_KEYS = new Map<string, SortKey>([
  ['_lastUpdated', (rec) => rec.lastUpdated],
  ['birthdate', (rec) => (JSON.parse(rec.json) as { birthDate?: string }).birthDate ?? null],
  ['family', (rec) => (JSON.parse(rec.json) as { name?: Array<{ family?: string }> }).name?.[0]?.family ?? null],
  ['gender', (rec) => (JSON.parse(rec.json) as { gender?: string }).gender ?? null],
]);

function sortOrders(value: PhpQueryValue | undefined): Array<{ key: SortKey; descending: boolean }> {
  if (value === undefined) return [];
  // createSortParameter explodes the (string) value at commas; an array stringifies to "Array".
  const fields = Array.isArray(value) ? ['Array'] : value.split(',');
  return fields.flatMap((field) => {
    const descending = field.startsWith('-');
    const key = PATIENT_SORT_KEYS.get(descending ? field.slice(1) : field);
    return key ? [{ key, descending }] : [];
  });
}

function compareKeys(a: number | string | null, b: number | string | null): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  return a < b ? -1 : 1;
}

function runPatientSearch(store: ResourceStore, query: SearchQuery, off: number, unstableTies: boolean): StoredRecord[] {
  checkNames(query, [...SEARCH_PARAMS.Patient, ...PAGING_PARAMS]);
  const table = store.table('Patient');
  const predicates: Predicate[] = [];
  const ids = idSet(query.get('_id'));
  if (ids) predicates.push((rec) => ids.has(rec.id));
  const updated = dateGroup(query.get('_lastUpdated'), off);
  predicates.push(...lastUpdatedPredicate(updated));
  predicates.push(...patientContentPredicates(query, off));

  const orders = sortOrders(query.get('_sort'));
  const count = countOf(query);
  const offset = offsetOf(query);

  let candidates: Iterable<StoredRecord>;
  let rowOrdered = true;
  if (ids) {
    candidates = [...ids].map((id) => table.byId.get(id)).filter((r): r is StoredRecord => !!r);
    rowOrdered = false;
  } else if (updated) {
    const w = windowOf(updated);
    candidates = table.byTime.range(w.lo, w.hi);
    rowOrdered = false;
  } else {
    candidates = table.byId.values();
  }
  const unsorted = orders.length === 0;
  // Row-ordered candidates without ORDER BY can stop at the end of the requested page.
  const stopAt = unsorted && rowOrdered ? offset + count : Infinity;
  const matches: StoredRecord[] = [];
  for (const rec of candidates) {
    if (matches.length >= stopAt) break;
    if (predicates.every((p) => p(rec))) matches.push(rec);
  }
  if (!rowOrdered || !unsorted) {
    // ORDER BY the mapped columns and nothing else: ties keep row order (no id tie-break), or, with
    // unstableTies, an order that depends on the LIMIT window.
    const window = offset + count;
    const ties =
      unstableTies && !unsorted && Number.isFinite(count)
        ? (a: StoredRecord, b: StoredRecord) => tieRank(a.seq, window) - tieRank(b.seq, window) || byRow(a, b)
        : byRow;
    matches.sort((a, b) => {
      for (const { key, descending } of orders) {
        const d = compareKeys(key(a), key(b));
        if (d !== 0) return descending ? -d : d;
      }
      return ties(a, b);
    });
  }
  return matches.slice(offset, offset + count);
}

/** The demographic parameters; they need the resource body, parsed only when one is used. */
function patientContentPredicates(query: SearchQuery, off: number): Predicate[] {
  const out: Predicate[] = [];
  const strings = (values: unknown[]): string[] => values.filter((v): v is string => typeof v === 'string').map((s) => s.toLowerCase());
  type P = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const extractors: Record<string, (p: P) => string[]> = {
    name: (p) =>
      strings((p.name ?? []).flatMap((n: P) => [n.text, n.family, ...(n.given ?? []), ...(n.prefix ?? []), ...(n.suffix ?? [])])),
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
    const v = query.get(name);
    if (v === undefined) continue;
    const wanted = alternatives(v).map((s) => s.toLowerCase());
    // FHIR string search: case-insensitive "starts with".
    out.push((rec) => extract(parse(rec)).some((s) => wanted.some((w) => s.startsWith(w))));
  }
  for (const v of values(query, 'gender')) {
    const wanted = alternatives(v);
    out.push((rec) => wanted.includes(parse(rec).gender));
  }
  for (const v of values(query, 'identifier')) {
    const matchers = alternatives(v).map(tokenMatcher);
    out.push((rec) => {
      const tokens = (parse(rec).identifier ?? []).map((i: P) => `${i.system ?? ''}|${i.value ?? ''}`);
      return matchers.some((m) => m(tokens));
    });
  }
  for (const v of values(query, 'generalPractitioner')) {
    const wanted = alternatives(v).map((s) => (s.includes('/') ? s : `Practitioner/${s}`));
    out.push((rec) => (parse(rec).generalPractitioner ?? []).some((r: P) => wanted.includes(r.reference)));
  }
  const birth = dateGroup(query.get('birthdate'), off);
  for (const group of birth ? [birth] : []) {
    out.push((rec) => {
      const birth = parse(rec).birthDate;
      const at = typeof birth === 'string' ? parseFhirDate(birth, 0)?.lo : undefined;
      return at !== undefined && group.some((c) => matchesDate(c, at));
    });
  }
  return out;
}

/** The parameter's value as a one-element list (absent: none), so each parameter is one OR group. */
function values(query: SearchQuery, name: string): PhpQueryValue[] {
  const v = query.get(name);
  return v === undefined ? [] : [v];
}

function* recordsById(byId: Map<string, StoredRecord>, ...idLists: Iterable<string>[]): Generator<StoredRecord> {
  for (const ids of idLists) {
    for (const id of ids) {
      const rec = byId.get(id);
      if (rec) yield rec;
    }
  }
}

function runObservationSearch(store: ResourceStore, query: SearchQuery, off: number): StoredRecord[] {
  checkNames(query, [...SEARCH_PARAMS.Observation, ...PAGING_PARAMS]);
  const table = store.table('Observation');
  const predicates: Predicate[] = [];
  const ids = idSet(query.get('_id'));
  if (ids) predicates.push((rec) => ids.has(rec.id));
  const patients = patientSet(query.get('patient'));
  if (patients) predicates.push((rec) => rec.patientId !== undefined && patients.has(rec.patientId));
  predicates.push(...tokenPredicate(query.get('category'), (rec) => rec.categoryTokens ?? []));
  predicates.push(...tokenPredicate(query.get('code'), (rec) => rec.codeTokens ?? []));
  const date = dateGroup(query.get('date'), off);
  if (date) predicates.push((rec) => rec.effective !== undefined && date.some((c) => matchesDate(c, rec.effective as number)));
  const updated = dateGroup(query.get('_lastUpdated'), off);
  predicates.push(...lastUpdatedPredicate(updated));
  const perSubService = countOf(query);
  // _offset and _sort are read (so they are not "unsupported") and then ignored, as OpenEMR does.
  offsetOf(query);

  // Start from whichever index yields the fewest candidates (generators: nothing is copied).
  let best: { size: number; rowOrdered: boolean; get: () => Iterable<StoredRecord> } = {
    size: table.byId.size,
    rowOrdered: true,
    get: () => table.byId.values(),
  };
  if (ids) {
    const list = [...ids];
    if (list.length < best.size) best = { size: list.length, rowOrdered: false, get: () => recordsById(table.byId, list) };
  }
  if (patients) {
    const sets = [...patients].map((id) => table.byPatient.get(id) ?? new Set<string>());
    const size = sets.reduce((n, s) => n + s.size, 0);
    if (size < best.size) best = { size, rowOrdered: false, get: () => recordsById(table.byId, ...sets) };
  }
  if (updated) {
    const w = windowOf(updated);
    const size = table.byTime.rangeSize(w.lo, w.hi);
    if (size < best.size) best = { size, rowOrdered: false, get: () => table.byTime.range(w.lo, w.hi) };
  }

  const groups = new Map<string, StoredRecord[]>();
  // Each sub-service answers its rows in row order with its own LIMIT. From a row-ordered source a
  // group can stop at _count, and once every sub-service has a full page nothing later can be returned.
  const cap = best.rowOrdered ? perSubService : Infinity;
  const subServices = store.subServiceCount();
  let full = 0;
  for (const rec of best.get()) {
    if (!predicates.every((p) => p(rec))) continue;
    const key = rec.subService ?? '';
    let list = groups.get(key);
    if (!list) groups.set(key, (list = []));
    if (list.length < cap) {
      list.push(rec);
      if (list.length === cap && ++full >= subServices) break;
    }
  }
  const rank = (k: string) => {
    const i = SUB_SERVICE_ORDER.indexOf(k);
    return i >= 0 ? i : k === '' ? Number.MAX_SAFE_INTEGER : SUB_SERVICE_ORDER.length;
  };
  const keys = [...groups.keys()].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
  return keys.flatMap((k) => {
    const list = groups.get(k) as StoredRecord[];
    return best.rowOrdered ? list : list.sort(byRow).slice(0, perSubService);
  });
}

/**
 * The patient-scoped types of one service each (standin-types.ts `search: 'clinical'`): Encounter
 * (FhirEncounterService.php), Condition (FhirConditionService.php), the report types
 * (report-types.ts) and the types of services/medical.ts. All gained `_lastUpdated` with
 * openemr#7746, so 7.0.2 answers it with an empty bundle like Observation
 * (traits.observationLastUpdated). No paging of their own (the connector never asks for it).
 * A report type's rows come sub-service after sub-service; `category` asks one of them only.
 */
export function searchClinical(store: ResourceStore, type: ClinicalType, query: SearchQuery, ctx: SearchContext): StoredRecord[] {
  try {
    if (pagingEmpties(query, ctx.traits)) return [];
    if (!ctx.traits.observationLastUpdated && query.has('_lastUpdated')) return [];
    checkNames(query, [...SEARCH_PARAMS[type], ...PAGING_PARAMS]);
    const table = store.table(type);
    const predicates: Predicate[] = [];
    const ids = idSet(query.get('_id'));
    if (ids) predicates.push((rec) => ids.has(rec.id));
    const patients = patientSet(query.get('patient'));
    if (patients) predicates.push((rec) => rec.patientId !== undefined && patients.has(rec.patientId));
    const date = dateGroup(query.get('date'), ctx.offsetMinutes);
    if (date) predicates.push((rec) => rec.effective !== undefined && date.some((c) => matchesDate(c, rec.effective as number)));
    const updated = dateGroup(query.get('_lastUpdated'), ctx.offsetMinutes);
    predicates.push(...lastUpdatedPredicate(updated));
    let order: (a: StoredRecord, b: StoredRecord) => number = byRow;
    if (isReportType(type)) {
      predicates.push(...tokenPredicate(query.get(REPORT_CODE_PARAM[type]), (rec) => rec.codeTokens ?? []));
      predicates.push(...reportCategoryPredicates(type, query.get('category')));
      const rank = (rec: StoredRecord) => REPORT_SUB_SERVICES[type].findIndex((s) => s.name === rec.subService);
      order = (a, b) => rank(a) - rank(b) || byRow(a, b);
    }
    if (isMedicalType(type)) predicates.push(...medicalTokenPredicates(MEDICAL_SERVICES[type].tokens ?? {}, query));
    let candidates: Iterable<StoredRecord> = table.byId.values();
    if (ids) candidates = [...ids].flatMap((id) => table.byId.get(id) ?? []);
    else if (patients)
      candidates = [...patients].flatMap((p) => [...(table.byPatient.get(p) ?? [])].flatMap((id) => table.byId.get(id) ?? []));
    else if (updated) {
      const w = windowOf(updated);
      candidates = table.byTime.range(w.lo, w.hi);
    }
    return [...candidates].filter((rec) => predicates.every((p) => p(rec))).sort(order);
  } catch (err) {
    if (err instanceof InvalidSearch) return [];
    throw err;
  }
}

/**
 * `category` of a report type: the rows of the one sub-service it picks (report-types.ts), compared
 * with the category only where that sub-service does; none picked: an invalid search.
 */
function reportCategoryPredicates(type: keyof typeof REPORT_SUB_SERVICES, value: PhpQueryValue | undefined): Predicate[] {
  if (value === undefined) return [];
  const values = alternatives(value);
  const service = reportSubServiceFor(type, values);
  if (!service) throw new InvalidSearch('Invalid or unsupported category');
  const predicates: Predicate[] = [(rec) => rec.subService === service.name];
  // category_code IN ('LOINC:<code>', …): the code of each value, its system not compared.
  const codes = new Set(values.map((v) => v.slice(v.indexOf('|') + 1)));
  if (service.filtersCategory) predicates.push((rec) => (rec.categoryTokens ?? []).some((t) => codes.has(t.slice(t.indexOf('|') + 1))));
  return predicates;
}

/** Token parameters compared with a top-level code element (MedicationRequest intent, status). */
function medicalTokenPredicates(tokens: Readonly<Record<string, string>>, query: SearchQuery): Predicate[] {
  const predicates: Predicate[] = [];
  for (const [param, element] of Object.entries(tokens)) {
    const value = query.get(param);
    if (value === undefined) continue;
    // A token's code, with or without `system|`; comma-separated values are OR-ed.
    const codes = new Set(alternatives(value).map((v) => v.slice(v.indexOf('|') + 1)));
    predicates.push((rec) => codes.has(String((JSON.parse(rec.json) as Record<string, unknown>)[element])));
  }
  return predicates;
}
