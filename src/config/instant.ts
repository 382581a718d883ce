/**
 * Strict ISO 8601 dates and instants for query parameters, CLI options and settings: a calendar
 * date (YYYY-MM-DD, read as midnight UTC) or a date-time with seconds optional, a fraction of up
 * to nine digits and a zone (Z or +hh:mm). Nothing else: no roll-over (2020-02-30 is refused,
 * where Date.parse would make it 1 March), nothing after the value (a trailing NUL or space), no
 * local times without a zone.
 */
const INSTANT = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-](\d{2}):(\d{2})))?$/;

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** Milliseconds since the epoch, or undefined when the text is not a valid date or instant. */
export function parseInstant(text: string): number | undefined {
  const m = INSTANT.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, , zone, zh, zm] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return undefined;
  if (h !== undefined && (Number(h) > 23 || Number(mi) > 59 || Number(s ?? 0) > 59)) return undefined;
  if (zone && zone !== 'Z' && (Number(zh) > 14 || Number(zm) > 59)) return undefined;
  const ms = Date.parse(h === undefined ? `${text}T00:00:00Z` : text);
  return Number.isNaN(ms) ? undefined : ms;
}

export const INSTANT_EXAMPLE = '2025-01-01T00:00:00Z';
