/**
 * Additive-increase / multiplicative-decrease concurrency toward AHDS, as TCP does it: start low,
 * ramp up gradually, halve on throttling, never above the ceiling. Microsoft advises ramping up
 * gradually and warns that past ~100 concurrent bundles things get worse.
 *
 * - Slow start: until the first throttling, one more slot per clean completion, so the limit
 *   doubles about once per round trip (2, 4, 8, 16) instead of jumping to the ceiling.
 * - Congestion avoidance: after a throttling, one more slot per window of as many clean
 *   completions as the current limit, about one per round trip.
 * - Congestion (429, 408, 5xx, a timeout) halves the limit. Requests that were already in flight when
 *   the limit was last lowered report the same congestion: passing the epoch they started in keeps
 *   one burst of 429s from halving the limit once per request (one halving per episode).
 * - After a halving the limit climbs back one slot per success to just below where congestion was
 *   met, then probes above it only slowly (one slot per PROBE_ROUNDS windows): a service with a fixed
 *   capacity (AHDS's per-instance request cap) is used almost fully with few 429s, and one that
 *   scaled out (AHDS autoscales every minute) is still found.
 */
const PROBE_ROUNDS = 16;

export class AdaptiveLimiter {
  private limitValue: number;
  private active = 0;
  private successesSinceChange = 0;
  private slowStartUntil: number;
  private epochValue = 0;
  private throttled = false;
  private readonly waiters: Array<() => void> = [];
  /** Highest limit reached, for the run summary and the benchmark. */
  peak: number;

  constructor(
    initial: number,
    private readonly ceiling: number,
    private readonly floor = 1,
  ) {
    this.limitValue = Math.max(floor, Math.min(initial, ceiling));
    this.peak = this.limitValue;
    this.slowStartUntil = ceiling;
  }

  get limit(): number {
    return this.limitValue;
  }

  get inFlight(): number {
    return this.active;
  }

  /** Changes each time the limit is lowered; see onThrottle. */
  get epoch(): number {
    return this.epochValue;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await task();
    } finally {
      this.release();
    }
  }

  /** A request completed without throttling. */
  onSuccess(): void {
    if (this.limitValue >= this.ceiling) return;
    const window = this.limitValue < this.slowStartUntil ? 1 : this.limitValue * (this.throttled ? PROBE_ROUNDS : 1);
    if (++this.successesSinceChange >= window) {
      this.limitValue++;
      this.peak = Math.max(this.peak, this.limitValue);
      this.successesSinceChange = 0;
      this.wake();
    }
  }

  /**
   * The service is congested (429, 408, 5xx, no answer): halve. `startedInEpoch` (the `epoch` read
   * when the request was started) makes congestion reported by requests sent before the last
   * decrease count once; without it every call halves.
   */
  onThrottle(startedInEpoch?: number): void {
    if (startedInEpoch !== undefined && startedInEpoch < this.epochValue) return;
    this.throttled = true;
    // Back quickly to just below the level that met congestion, then probe slowly.
    this.slowStartUntil = Math.max(this.floor, this.limitValue - 1);
    this.limitValue = Math.max(this.floor, Math.floor(this.limitValue / 2));
    this.successesSinceChange = 0;
    this.epochValue++;
  }

  private acquire(): Promise<void> {
    if (this.active < this.limitValue) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.waiters.push(() => {
        this.active++;
        resolve();
      }),
    );
  }

  private release(): void {
    this.active--;
    this.wake();
  }

  private wake(): void {
    while (this.active < this.limitValue && this.waiters.length > 0) this.waiters.shift()!();
  }
}
