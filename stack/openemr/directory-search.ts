/**
 * Practitioner, Organization and Location search with OpenEMR's semantics. Each lists its own
 * parameters (standin-types.ts, from loadSearchParameters / getSearchParams in royharden/openemr
 * src/Services/FHIR/FhirPractitionerService.php, FhirOrganizationService.php, FhirLocationService.php);
 * any other parameter empties the answer. None pages: `_count`, `_offset` and `_sort` are read and
 * ignored, as for Encounter and Condition. `_lastUpdated` compares users.last_updated,
 * facility.last_updated and, for Location's UNION, patient_data.date as well (LocationService.php).
 * String parameters match case-insensitively at the start of a word's value; tokens exactly.
 */
import {
  alternatives,
  byRow,
  checkNames,
  dateGroup,
  idSet,
  InvalidSearch,
  lastUpdatedPredicate,
  PAGING_PARAMS,
  pagingEmpties,
  type Predicate,
  type SearchContext,
  type SearchQuery,
  windowOf,
} from './fhir-search';
import { type DirectoryType, SEARCH_PARAMS } from './standin-types';
import type { ResourceStore, StoredRecord } from './resource-store';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const list = (v: unknown): Json[] => (Array.isArray(v) ? v : v ? [v] : []);
const strings = (values: unknown[]): string[] => values.filter((v): v is string => typeof v === 'string').map((s) => s.toLowerCase());

/** The values a string parameter is matched against. */
const STRING_FIELDS: Record<string, (r: Json) => string[]> = {
  name: (r) =>
    typeof r.name === 'string'
      ? strings([r.name])
      : strings(list(r.name).flatMap((n) => [n.text, n.family, ...(n.given ?? []), ...(n.prefix ?? [])])),
  family: (r) => strings(list(r.name).map((n) => n.family)),
  given: (r) => strings(list(r.name).flatMap((n) => n.given ?? [])),
  address: (r) => strings(list(r.address).flatMap((a) => [...(a.line ?? []), a.city, a.state, a.postalCode, a.country])),
  'address-city': (r) => strings(list(r.address).map((a) => a.city)),
  'address-state': (r) => strings(list(r.address).map((a) => a.state)),
  'address-postalcode': (r) => strings(list(r.address).map((a) => a.postalCode)),
};
/** The values a token parameter is matched against (exactly). */
const TOKEN_FIELDS: Record<string, (r: Json) => string[]> = {
  email: (r) =>
    list(r.telecom)
      .filter((t) => t.system === 'email')
      .map((t) => String(t.value)),
  phone: (r) =>
    list(r.telecom)
      .filter((t) => t.system === 'phone')
      .map((t) => String(t.value)),
  telecom: (r) => list(r.telecom).map((t) => String(t.value)),
  active: (r) => (typeof r.active === 'boolean' ? [String(r.active)] : []),
};

export function searchDirectory(store: ResourceStore, type: DirectoryType, query: SearchQuery, ctx: SearchContext): StoredRecord[] {
  try {
    if (pagingEmpties(query, ctx.traits)) return [];
    checkNames(query, [...SEARCH_PARAMS[type], ...PAGING_PARAMS]);
    const table = store.table(type);
    const predicates: Predicate[] = [];
    const ids = idSet(query.get('_id'));
    if (ids) predicates.push((rec) => ids.has(rec.id));
    const updated = dateGroup(query.get('_lastUpdated'), ctx.offsetMinutes);
    predicates.push(...lastUpdatedPredicate(updated));
    const parse = (rec: StoredRecord) => JSON.parse(rec.json) as Json;
    for (const [name, extract] of Object.entries(STRING_FIELDS)) {
      const v = query.get(name);
      if (v === undefined) continue;
      const wanted = alternatives(v).map((s) => s.toLowerCase());
      predicates.push((rec) => extract(parse(rec)).some((s) => wanted.some((w) => s.startsWith(w))));
    }
    for (const [name, extract] of Object.entries(TOKEN_FIELDS)) {
      const v = query.get(name);
      if (v === undefined) continue;
      const wanted = alternatives(v);
      predicates.push((rec) => extract(parse(rec)).some((s) => wanted.includes(s)));
    }
    let candidates: Iterable<StoredRecord> = table.byId.values();
    if (ids) candidates = [...ids].flatMap((id) => table.byId.get(id) ?? []);
    else if (updated) {
      const w = windowOf(updated);
      candidates = table.byTime.range(w.lo, w.hi);
    }
    return [...candidates].filter((rec) => predicates.every((p) => p(rec))).sort(byRow);
  } catch (err) {
    if (err instanceof InvalidSearch) return [];
    throw err;
  }
}
