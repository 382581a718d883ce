/**
 * The server's time zone as OpenEMR uses it. MySQL DATETIME columns hold local wall-clock times
 * (interface/globals.php:518 sets the session zone to today's offset), and OpenEMR labels them with
 * the offset of TODAY, whatever the row's season (UtilsService::getLocalDateAsUTC :404-415 and
 * SearchFieldStatementResolver::adjustTimezoneToLocalTime :332-335 both use date('P')). So the
 * stand-in keeps every row date as local wall-clock seconds ("naive": epoch seconds of the wall
 * clock read as UTC), writes them with the offset in force when written, and serves and searches
 * them with the offset in force now. With a fixed utcOffset the two are the same; with a DST zone
 * (timeZone: 'America/New_York') a July row served in winter comes out an hour late, as on OpenEMR.
 */
import { formatUtcOffset, parseUtcOffset } from './fhir-dates';
import type { ServerClock } from './server-clock';

export class ServerZone {
  private readonly format?: Intl.DateTimeFormat;
  private readonly fixedMinutes: number;

  constructor(
    private readonly clock: ServerClock,
    spec: { utcOffset?: string; timeZone?: string },
  ) {
    if (spec.timeZone !== undefined && spec.utcOffset !== undefined) throw new Error('Set utcOffset or timeZone, not both');
    this.name = spec.timeZone;
    if (spec.timeZone !== undefined) {
      try {
        this.format = new Intl.DateTimeFormat('en-US', { timeZone: spec.timeZone, timeZoneName: 'longOffset' });
      } catch {
        throw new Error(`timeZone is not an IANA time zone: ${spec.timeZone}`);
      }
    }
    this.fixedMinutes = parseUtcOffset(spec.utcOffset ?? '-05:00');
  }

  /** The IANA name (PHP's timezone_type 3), when the zone is one. */
  readonly name?: string;

  /** UTC offset in minutes at an instant. */
  offsetAt(epochSeconds: number): number {
    if (!this.format) return this.fixedMinutes;
    const label = this.format.formatToParts(new Date(epochSeconds * 1000)).find((p) => p.type === 'timeZoneName')?.value ?? 'GMT';
    return label === 'GMT' ? 0 : parseUtcOffset(label.slice(3));
  }

  /** date('P'): the offset in force now, on the server clock. */
  offsetNow(): number {
    return this.offsetAt(this.clock.nowSeconds());
  }

  /** The local wall-clock seconds a row written at this instant stores. */
  toNaive(epochSeconds: number): number {
    return epochSeconds + this.offsetAt(epochSeconds) * 60;
  }

  /** Does the offset change during the year (so served times may need today's label)? */
  get followsDst(): boolean {
    return this.format !== undefined;
  }

  label(minutes: number): string {
    return formatUtcOffset(minutes);
  }
}
