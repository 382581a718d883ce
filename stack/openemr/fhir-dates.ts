/**
 * Date handling the way OpenEMR does it: everything is compared at one-second precision in the
 * server's local time, timestamps are emitted with the server's offset, and a search date that has
 * a time must have seconds (anything else is "invalid", which OpenEMR answers with an empty bundle).
 */

/** Parses '+02:00' / '-05:00' / 'Z' into minutes east of UTC. */
export function parseUtcOffset(offset: string): number {
  if (offset === 'Z') return 0;
  const m = /^([+-])(\d{2}):(\d{2})$/.exec(offset);
  if (!m) throw new Error(`Not a UTC offset: ${offset} (expected like -05:00)`);
  const minutes = Number(m[2]) * 60 + Number(m[3]);
  return m[1] === '-' ? -minutes : minutes;
}

export function formatUtcOffset(minutes: number): string {
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

/** Local wall-clock time without offset, e.g. Bundle.meta.lastUpdated "2021-09-14T09:13:51". */
export function formatLocalNaive(epochSeconds: number, offsetMinutes: number): string {
  return new Date((epochSeconds + offsetMinutes * 60) * 1000).toISOString().slice(0, 19);
}

/** Local time with the server offset, e.g. meta.lastUpdated "2015-06-22T00:00:00-04:00". */
export function formatLocalInstant(epochSeconds: number, offsetMinutes: number): string {
  return formatLocalNaive(epochSeconds, offsetMinutes) + formatUtcOffset(offsetMinutes);
}

/** A FHIR date value stands for an interval at its precision: [lo, hi) in epoch seconds. */
export interface DateInterval {
  lo: number;
  hi: number;
}

// Seconds are mandatory once a time is given (OpenEMR rejects "2024-01-01T10:00").
const FHIR_DATE = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/**
 * Parses a FHIR date/dateTime/instant. A value without an offset is server local time. Fractions of a
 * second are dropped (one-second precision). Returns null when the value is not acceptable.
 */
export function parseFhirDate(value: string, serverOffsetMinutes: number): DateInterval | null {
  const m = FHIR_DATE.exec(value);
  if (!m) return null;
  const year = Number(m[1]);
  const month = m[2] === undefined ? undefined : Number(m[2]);
  const day = m[3] === undefined ? undefined : Number(m[3]);
  if (month !== undefined && (month < 1 || month > 12)) return null;
  if (day !== undefined) {
    const probe = new Date(Date.UTC(year, month! - 1, day));
    if (probe.getUTCDate() !== day) return null;
  }
  const offsetMinutes = m[7] === undefined ? serverOffsetMinutes : parseUtcOffset(m[7]);
  const shift = offsetMinutes * 60;
  const utcSeconds = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0) => Date.UTC(y, mo, d, h, mi, s) / 1000 - shift;
  if (m[4] !== undefined) {
    const h = Number(m[4]);
    const mi = Number(m[5]);
    const s = Number(m[6]);
    if (h > 23 || mi > 59 || s > 59) return null;
    const lo = utcSeconds(year, month! - 1, day!, h, mi, s);
    return { lo, hi: lo + 1 };
  }
  if (day !== undefined) return { lo: utcSeconds(year, month! - 1, day), hi: utcSeconds(year, month! - 1, day + 1) };
  if (month !== undefined) return { lo: utcSeconds(year, month - 1, 1), hi: utcSeconds(year, month, 1) };
  return { lo: utcSeconds(year, 0, 1), hi: utcSeconds(year + 1, 0, 1) };
}

/** The start of a stored timestamp, in epoch seconds; null when it cannot be read. */
export function instantSeconds(value: unknown, serverOffsetMinutes: number): number | null {
  if (typeof value !== 'string') return null;
  return parseFhirDate(value, serverOffsetMinutes)?.lo ?? null;
}

export type DatePrefix = 'eq' | 'ne' | 'gt' | 'ge' | 'lt' | 'le' | 'sa' | 'eb';

export interface DateCondition {
  prefix: DatePrefix;
  interval: DateInterval;
}

/**
 * Parses one search value like "ge2024-01-01T00:00:00-05:00". `sa` and `eb` are valid
 * (SearchComparator::ALL_COMPARATORS) and read as `>` upper bound and `<` lower bound
 * (SearchFieldStatementResolver.php:95-108); `ap` is not supported and counts as invalid.
 */
export function parseDateCondition(raw: string, serverOffsetMinutes: number): DateCondition | null {
  let prefix: DatePrefix = 'eq';
  let rest = raw;
  const p = /^([a-z]{2})/.exec(raw);
  if (p) {
    if (!['eq', 'ne', 'gt', 'ge', 'lt', 'le', 'sa', 'eb'].includes(p[1])) return null;
    prefix = p[1] as DatePrefix;
    rest = raw.slice(2);
  }
  const interval = parseFhirDate(rest, serverOffsetMinutes);
  return interval ? { prefix, interval } : null;
}

export function matchesDate(condition: DateCondition, t: number): boolean {
  const { lo, hi } = condition.interval;
  switch (condition.prefix) {
    case 'eq':
      return t >= lo && t < hi;
    case 'ne':
      return t < lo || t >= hi;
    case 'gt':
    case 'sa':
      return t >= hi;
    case 'ge':
      return t >= lo;
    case 'lt':
    case 'eb':
      return t < lo;
    case 'le':
      return t < hi;
  }
}

/** The [lo, hi) window a condition confines a value to; 'ne' confines nothing. */
export function conditionWindow(condition: DateCondition): DateInterval {
  const { lo, hi } = condition.interval;
  switch (condition.prefix) {
    case 'eq':
      return { lo, hi };
    case 'gt':
    case 'sa':
      return { lo: hi, hi: Infinity };
    case 'ge':
      return { lo, hi: Infinity };
    case 'lt':
    case 'eb':
      return { lo: -Infinity, hi: lo };
    case 'le':
      return { lo: -Infinity, hi };
    case 'ne':
      return { lo: -Infinity, hi: Infinity };
  }
}
