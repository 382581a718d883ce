import { createHmac } from 'node:crypto';

/**
 * Keyed pseudonyms and date shifts for de-identification mode. Everything is derived from the
 * secret key with HMAC-SHA256, so the same source gives the same output in every run and on every
 * instance, and nobody without the key can link it back.
 */
export class Deidentifier {
  private readonly idCache = new Map<string, string>();
  private readonly shiftCache = new Map<string, number>();
  /** The clock ages are reckoned on (ninetyOrOlder). */
  readonly now: () => number;

  constructor(
    private readonly key: string,
    options: { now?: () => number } = {},
  ) {
    this.now = options.now ?? Date.now;
  }

  /** 32 lower-case hex characters (128 bits): a valid FHIR id, the same for the same type and id. */
  pseudonymId(resourceType: string, sourceId: string): string {
    const cacheKey = `${resourceType}/${sourceId}`;
    let id = this.idCache.get(cacheKey);
    if (id === undefined) {
      id = createHmac('sha256', this.key).update(`fhirsync:deid:id\u0000${resourceType}\u0000${sourceId}`).digest('hex').slice(0, 32);
      remember(this.idCache, cacheKey, id);
    }
    return id;
  }

  /** Days every date of this patient moves by: 1-180 days either way (never 0). */
  shiftDays(patientSourceId: string): number {
    let days = this.shiftCache.get(patientSourceId);
    if (days === undefined) {
      const n = createHmac('sha256', this.key).update(`fhirsync:deid:date-shift\u0000${patientSourceId}`).digest().readUInt32BE(0) % 360;
      days = n < 180 ? -(n + 1) : n - 179;
      remember(this.shiftCache, patientSourceId, days);
    }
    return days;
  }
}

/** Bounded caches: a million-resource run must not grow memory without limit. */
function remember<V>(cache: Map<string, V>, key: string, value: V): void {
  if (cache.size >= 50_000) cache.clear();
  cache.set(key, value);
}

// FHIR date, dateTime and instant: YYYY, YYYY-MM, YYYY-MM-DD, or a date with time and zone.
const DATE_LIKE = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(T.*)?)?)?$/;

/**
 * Moves a FHIR date/dateTime/instant by whole days, keeping its precision and the time of day and
 * offset exactly as written. Year and year-month values move their first day and keep the
 * precision (so "2020" may become "2019"). Strings of another shape come back unchanged.
 */
export function shiftDate(value: string, days: number): string {
  const m = DATE_LIKE.exec(value);
  if (!m) return value;
  const year = Number(m[1]);
  const month = m[2] === undefined ? 1 : Number(m[2]);
  const day = m[3] === undefined ? 1 : Number(m[3]);
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day + days);
  const y = String(d.getUTCFullYear()).padStart(4, '0');
  if (m[2] === undefined) return y;
  const mo = String(d.getUTCMonth() + 1).padStart(2, '0');
  if (m[3] === undefined) return `${y}-${mo}`;
  const dd = String(d.getUTCDate()).padStart(2, '0');
  return `${y}-${mo}-${dd}${m[4] ?? ''}`;
}

/**
 * Safe Harbor groups ages over 89 into one category, "90 or older" (45 CFR §164.514(b)(2)(i)(C)):
 * the birth date of such a person becomes this year, whatever it was, so every age reckoned from it
 * (today or at any later date) reads 90 or more and says nothing more. A fixed value, not one moved
 * with the calendar, so the output stays the same from run to run.
 */
export const NINETY_OR_OLDER_BIRTH_YEAR = '1900';

/**
 * Whether a person born on `birthDate` (a FHIR date: YYYY, YYYY-MM or YYYY-MM-DD) is 90 or older at
 * `at` (ms since the epoch), reckoned from the earliest day the value allows (a year alone: 1 January),
 * so a value that may mean 90 counts. False for a value that is not a FHIR date.
 */
export function ninetyOrOlder(birthDate: string, at: number): boolean {
  const m = DATE_LIKE.exec(birthDate);
  if (!m || m[4] !== undefined) return false;
  const ninetieth = new Date(0);
  ninetieth.setUTCFullYear(Number(m[1]) + 90, m[2] === undefined ? 0 : Number(m[2]) - 1, m[3] === undefined ? 1 : Number(m[3]));
  return ninetieth.getTime() <= at;
}
