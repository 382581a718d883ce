/**
 * A stored record as it goes out. Stored JSON carries meta.lastUpdated from the row's date column;
 * two cases are served with "now" instead: a row whose date column is NULL (labs:
 * FhirObservationLaboratoryService.php:221), and every Observation of a release whose services
 * stamp the current time (7.0.2 before .2, versions.ts observationMetaNow).
 */
import { formatLocalInstant, formatUtcOffset } from './fhir-dates';
import type { StoredRecord } from './resource-store';
import type { OpenEmrVersionTraits } from './versions';

export interface ServeContext {
  nowSeconds: number;
  /** Today's offset (date('P')). */
  offsetMinutes: number;
  /** The zone follows DST: stored times are relabelled with today's offset. */
  relabel: boolean;
  traits: OpenEmrVersionTraits;
}

// meta is placed right after id, so the first lastUpdated in the text is meta's.
const META_LAST_UPDATED = /"lastUpdated":"([^"]*?)([+-]\d\d:\d\d|Z)?"/;

// Observation times kept as wall-clock DATETIMEs with a DST zone (resource-store.ts withWallClockTimes).
const CLINICAL_TIMES = /"(effectiveDateTime|issued)":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:[+-]\d\d:\d\d|Z)"/g;

/**
 * Organization and Location addresses get the period start UtilsService::createAddressFromRecord
 * invents when the row has none: now minus one year, to the millisecond (RFC3339_EXTENDED), so the
 * same row reads differently every time (the connector removes it: src/mapping/directory.ts).
 */
function withInventedAddressPeriod(json: string, ctx: ServeContext): string {
  const resource = JSON.parse(json) as { address?: unknown };
  if (!resource.address) return json;
  const ms = String(Date.now() % 1000).padStart(3, '0');
  const start = formatLocalInstant(ctx.nowSeconds - 365 * 86_400, ctx.offsetMinutes).replace(/([+-]\d\d:\d\d|Z)$/, `.${ms}$1`);
  const addresses = Array.isArray(resource.address) ? resource.address : [resource.address];
  for (const a of addresses as Array<Record<string, unknown>>) a.period = { start };
  return JSON.stringify(resource);
}

export function servedJson(rec: StoredRecord, ctx: ServeContext): string {
  if (rec.type === 'Organization' || rec.type === 'Location') return withInventedAddressPeriod(servedStoredJson(rec, ctx), ctx);
  return servedStoredJson(rec, ctx);
}

function servedStoredJson(rec: StoredRecord, ctx: ServeContext): string {
  const now = rec.lastUpdated === null || (rec.type === 'Observation' && ctx.traits.observationMetaNow);
  if (!ctx.relabel)
    return now ? rec.json.replace(META_LAST_UPDATED, `"lastUpdated":"${formatLocalInstant(ctx.nowSeconds, ctx.offsetMinutes)}"`) : rec.json;
  // Stored wall-clock times, labelled with the offset in force today (UtilsService::getLocalDateAsUTC).
  const label = formatUtcOffset(ctx.offsetMinutes);
  const json = rec.json.replace(CLINICAL_TIMES, (_m, field: string, wallClock: string) => `"${field}":"${wallClock}${label}"`);
  if (now) return json.replace(META_LAST_UPDATED, `"lastUpdated":"${formatLocalInstant(ctx.nowSeconds, ctx.offsetMinutes)}"`);
  return json.replace(META_LAST_UPDATED, (_m, wallClock: string) => `"lastUpdated":"${wallClock}${label}"`);
}
