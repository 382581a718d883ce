/**
 * A process clock placed near a DST change of a real zone: only Date is faked (timers run for
 * real), so the connector, the Entra and AHDS stand-ins and the OpenEMR stand-in's server clock all
 * see the same instant, and a test moves them across the change as time passes on a deployment.
 */
export const HOUR_MS = 3_600_000;

/** UTC offset label of the zone at an instant, e.g. "GMT-05:00". */
export function zoneLabel(zone: string, ms: number): string {
  return new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'longOffset' })
    .formatToParts(new Date(ms))
    .find((p) => p.type === 'timeZoneName')!.value;
}

/** The zone's UTC offset in minutes at an instant ("GMT" alone is 0). */
export function zoneOffsetMinutes(zone: string, ms: number): number {
  const m = /GMT([+-])(\d{2}):(\d{2})/.exec(zoneLabel(zone, ms));
  return m ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
}

/**
 * The first whole hour after `fromMs` at which the zone's offset differs from the one before it;
 * with `direction`, the first such change that moves the offset that way ('forward': spring).
 */
export function nextDstChange(zone: string, fromMs: number, direction?: 'forward' | 'back'): number {
  let t = Math.ceil(fromMs / HOUR_MS) * HOUR_MS;
  let before = zoneOffsetMinutes(zone, t);
  for (;;) {
    t += HOUR_MS;
    const now = zoneOffsetMinutes(zone, t);
    if (now !== before && (!direction || (direction === 'forward') === now > before)) return t;
    before = now;
  }
}

/** Fakes Date only, starting at `now`. */
export function fakeDateOnly(now: number): void {
  jest.useFakeTimers({
    now,
    advanceTimers: true,
    doNotFake: [
      'nextTick',
      'setImmediate',
      'clearImmediate',
      'setTimeout',
      'clearTimeout',
      'setInterval',
      'clearInterval',
      'queueMicrotask',
      'hrtime',
      'performance',
    ],
  });
}
