/**
 * Search of the AHDS stand-in: the subset a sync needs for verification.
 *   _lastUpdated (eq, ne, gt, lt, ge, le, sa, eb, ap; any precision), _sort=_lastUpdated / -_lastUpdated,
 *   _count (default 10, max 1000), _summary=count, _total=accurate, _id, _elements, continuation by `ct`.
 * Other parameters defined for the type in R4 are matched with Medplum's matchesSearchRequest; unknown
 * ones are ignored with a warning entry (search.mode "outcome"), like AHDS's lenient handling.
 */
import crypto from 'node:crypto';
import { getSearchParameter, matchesSearchRequest, parseSearchRequest, type SearchRequest } from '@medplum/core';
import type { Bundle, BundleEntry, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import type { Head, VersionedStore } from './store';

export const DEFAULT_COUNT = 10;
export const MAX_COUNT = 1000;

export class SearchError extends Error {
  constructor(message: string) {
    super(message);
  }
}

interface Range {
  start: number;
  end: number;
}

/** Start (inclusive) and end (exclusive) in ms of a FHIR date/dateTime/instant at its precision. */
export function parseDateRange(raw: string): Range {
  const value = raw.replace(/ /g, '+'); // an unencoded "+" in a query string arrives as a space
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/.exec(value);
  if (!m) throw new SearchError(`The date value '${raw}' is not valid.`);
  const [, y, mo, d, h, mi, s, frac, tz] = m;
  const offsetMs = !tz || tz === 'Z' ? 0 : (tz[0] === '-' ? -1 : 1) * (Number(tz.slice(1, 3)) * 60 + Number(tz.slice(4, 6))) * 60000;
  const utc = (yy: number, mm = 0, dd = 1, hh = 0, mn = 0, ss = 0, ms = 0): number => Date.UTC(yy, mm, dd, hh, mn, ss, ms) - offsetMs;
  const Y = Number(y);
  if (mo === undefined) return { start: utc(Y), end: utc(Y + 1) };
  const M = Number(mo) - 1;
  if (d === undefined) return { start: utc(Y, M), end: utc(Y, M + 1) };
  const D = Number(d);
  if (h === undefined) return { start: utc(Y, M, D), end: utc(Y, M, D + 1) };
  const H = Number(h);
  const Mi = Number(mi);
  if (s === undefined) return { start: utc(Y, M, D, H, Mi), end: utc(Y, M, D, H, Mi + 1) };
  const S = Number(s);
  if (frac === undefined) return { start: utc(Y, M, D, H, Mi, S), end: utc(Y, M, D, H, Mi, S + 1) };
  const digits = frac.length;
  const ms = Number(frac.padEnd(3, '0').slice(0, 3));
  const start = utc(Y, M, D, H, Mi, S, ms);
  // Sub-millisecond precision collapses to one millisecond (lastUpdated is stored to the ms).
  return { start, end: start + (digits >= 3 ? 1 : 10 ** (3 - digits)) };
}

const PREFIXES = ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap'] as const;
type Prefix = (typeof PREFIXES)[number];

interface Token {
  s: number;
}

function encodeToken(t: Token): string {
  return Buffer.from(JSON.stringify(t)).toString('base64url');
}

function decodeToken(ct: string): Token {
  try {
    const t = JSON.parse(Buffer.from(ct, 'base64url').toString('utf8')) as Token;
    if (typeof t.s !== 'number') throw new Error();
    return t;
  } catch {
    throw new SearchError('Invalid continuation token.');
  }
}

const CONTROL = new Set(['_count', '_sort', '_summary', '_total', '_elements', '_format', '_pretty', 'ct', '_id', '_lastUpdated']);

export async function searchType(store: VersionedStore, fhirUrl: string, type: string, params: URLSearchParams): Promise<Bundle> {
  const warnings: OperationOutcomeIssue[] = [];

  // _lastUpdated
  let fromMs: number | undefined;
  let toMs: number | undefined;
  const excluded: Range[] = [];
  for (const raw of params.getAll('_lastUpdated')) {
    const prefix = (PREFIXES as readonly string[]).includes(raw.slice(0, 2)) ? (raw.slice(0, 2) as Prefix) : 'eq';
    const r = parseDateRange(prefix === 'eq' && !raw.startsWith('eq') ? raw : raw.slice(2));
    const lower = (v: number): void => {
      fromMs = fromMs === undefined ? v : Math.max(fromMs, v);
    };
    const upper = (v: number): void => {
      toMs = toMs === undefined ? v : Math.min(toMs, v);
    };
    switch (prefix) {
      case 'eq':
      case 'ap':
        lower(r.start);
        upper(r.end);
        break;
      case 'gt':
      case 'sa':
        lower(r.end);
        break;
      case 'ge':
        lower(r.start);
        break;
      case 'lt':
      case 'eb':
        upper(r.start);
        break;
      case 'le':
        upper(r.end);
        break;
      case 'ne':
        excluded.push(r);
        break;
    }
  }

  // _sort
  let descending = false;
  const sort = params.get('_sort');
  if (sort) {
    const first = sort.split(',')[0].trim();
    if (first === '_lastUpdated') descending = false;
    else if (first === '-_lastUpdated') descending = true;
    else
      warnings.push({ severity: 'warning', code: 'not-supported', diagnostics: `Sorting by the '${first}' parameter is not supported.` });
  }

  // _count, _summary, _total
  const countRaw = params.get('_count');
  let count = DEFAULT_COUNT;
  if (countRaw !== null) {
    const n = Number(countRaw);
    if (!Number.isInteger(n) || n < 0) throw new SearchError(`The '_count' parameter value '${countRaw}' is not valid.`);
    count = Math.min(n, MAX_COUNT);
    // fhir-server SearchOptionsFactory: a _count above the maximum is clamped, and says so.
    if (n > MAX_COUNT)
      warnings.push({
        severity: 'information',
        code: 'informational',
        diagnostics: `The '_count' parameter exceeds limit configured for server. Resetting to ${MAX_COUNT}.`,
      });
  }
  const summaryCount = params.get('_summary') === 'count';
  const wantTotal = summaryCount || params.get('_total') === 'accurate';
  const elements = params
    .get('_elements')
    ?.split(',')
    .map((e) => e.trim())
    .filter(Boolean);

  // _id
  const idParams = params.getAll('_id');
  const ids = idParams.length ? new Set(idParams.flatMap((v) => v.split(',').map((s) => s.trim()))) : undefined;

  // Other parameters.
  const generic: Record<string, string[]> = {};
  for (const [key, value] of params.entries()) {
    if (CONTROL.has(key)) continue;
    const code = key.split(':')[0];
    if (getSearchParameter(type, code)) (generic[key] ??= []).push(value);
    else
      warnings.push({
        severity: 'warning',
        code: 'not-supported',
        diagnostics: `The search parameter '${key}' is not supported for resource type '${type}'.`,
      });
  }
  let genericRequest: SearchRequest | undefined;
  if (Object.keys(generic).length) {
    try {
      genericRequest = parseSearchRequest(type as Resource['resourceType'], generic);
    } catch (err) {
      throw new SearchError(String((err as Error)?.message ?? err));
    }
  }

  const ct = params.get('ct');
  const afterSeq = ct ? decodeToken(ct).s : undefined;

  // Candidates in order.
  const candidates = (after: number | undefined): Iterable<{ id: string; head: Head }> => {
    if (ids) {
      const list: Array<{ id: string; head: Head }> = [];
      for (const id of ids) {
        const head = store.head(type, id);
        if (!head || head.deleted) continue;
        if (fromMs !== undefined && head.ms < fromMs) continue;
        if (toMs !== undefined && head.ms >= toMs) continue;
        if (after !== undefined && (descending ? head.seq >= after : head.seq <= after)) continue;
        list.push({ id, head });
      }
      return list.sort((a, b) => (descending ? b.head.seq - a.head.seq : a.head.seq - b.head.seq));
    }
    return store.scan(type, { fromMs, toMs, descending, afterSeq: after });
  };
  const matches = async (c: { id: string; head: Head }): Promise<Resource | undefined | false> => {
    if (excluded.some((r) => c.head.ms >= r.start && c.head.ms < r.end)) return false;
    if (!genericRequest) return undefined;
    const resource = await store.read(type, c.id);
    if (!resource || !matchesSearchRequest(resource, genericRequest)) return false;
    return resource;
  };

  let total: number | undefined;
  if (wantTotal) {
    if (!genericRequest && excluded.length === 0 && !ids && fromMs === undefined && toMs === undefined) {
      total = store.liveCount(type);
    } else {
      total = 0;
      for (const c of candidates(undefined)) if ((await matches(c)) !== false) total++;
    }
  }

  const selfUrl = `${fhirUrl}/${type}${params.toString() ? `?${params.toString()}` : ''}`;
  const bundle: Bundle = {
    resourceType: 'Bundle',
    id: crypto.randomUUID(),
    meta: { lastUpdated: new Date().toISOString() },
    type: 'searchset',
    link: [{ relation: 'self', url: selfUrl }],
  };
  if (total !== undefined) bundle.total = total;
  const entries: BundleEntry[] = [];
  if (!summaryCount && count > 0) {
    let lastSeq: number | undefined;
    let more = false;
    for (const c of candidates(afterSeq)) {
      const m = await matches(c);
      if (m === false) continue;
      if (entries.length === count) {
        more = true;
        break;
      }
      let resource = m ?? (await store.read(type, c.id));
      if (!resource) continue;
      if (elements) resource = subset(resource, elements);
      entries.push({ fullUrl: `${fhirUrl}/${type}/${c.id}`, resource, search: { mode: 'match' } });
      lastSeq = c.head.seq;
    }
    if (more && lastSeq !== undefined) {
      const next = new URLSearchParams(params);
      next.delete('ct');
      next.set('ct', encodeToken({ s: lastSeq }));
      bundle.link!.push({ relation: 'next', url: `${fhirUrl}/${type}?${next.toString()}` });
    }
  }
  // fhir-server BundleFactory: the OperationOutcome entry comes before the matches.
  if (warnings.length) {
    entries.unshift({
      resource: { resourceType: 'OperationOutcome', id: crypto.randomUUID(), issue: warnings },
      search: { mode: 'outcome' },
    });
  }
  if (entries.length) bundle.entry = entries;
  return bundle;
}

function subset(resource: Resource, elements: string[]): Resource {
  const src = resource as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = { resourceType: resource.resourceType, id: resource.id };
  for (const e of elements) if (src[e] !== undefined) out[e] = src[e];
  const meta = { ...(resource.meta ?? {}) };
  meta.tag = [
    ...(meta.tag ?? []),
    { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED', display: 'subsetted' },
  ];
  out.meta = meta;
  return out as unknown as Resource;
}
