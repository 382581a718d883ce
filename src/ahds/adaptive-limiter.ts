/**
 * Additive-increase / multiplicative-decrease concurrency toward AHDS, as TCP does it: start low,
 * ramp up gradually, halve on throttling, never above the ceiling. Microsoft advises ramping up
 * gradually and warns that past ~100 concurrent bundles things get worse.
 *
 * - Slow start: until the first throttling, one more slot per clean completion, so the limit
 *   doubles about once per round trip (2, 4, 8, 16) instead of jumping to the ceiling.
 * - Congestion avoidance: after a throttling, one more slot per window of as many clean
 *   completions as the current limit, about one per round trip.
 * - A 429 halves the limit and ends slow start. Requests that were already in flight when the limit
 *   was last lowered report the same congestion: passing the epoch they started in keeps one burst
 *   of 429s from halving the limit once per request.
 */
export class AdaptiveLimiter {
  private limitValue: number;
  private active = 0;
  private successesSinceChange = 0;
  private slowStartUntil: number;
  private epochValue = 0;
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
    const window = this.limitValue < this.slowStartUntil ? 1 : this.limitValue;
    if (++this.successesSinceChange >= window) {
      this.limitValue++;
      this.peak = Math.max(this.peak, this.limitValue);
      this.successesSinceChange = 0;
      this.wake();
    }
  }

  /**
   * The service throttled us (429): halve, and leave slow start for good. `startedInEpoch` (the
   * `epoch` read when the throttled request was started) makes throttles of requests sent before the
   * last decrease count once; without it every call halves.
   */
  onThrottle(startedInEpoch?: number): void {
    this.slowStartUntil = 0;
    if (startedInEpoch !== undefined && startedInEpoch < this.epochValue) return;
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
