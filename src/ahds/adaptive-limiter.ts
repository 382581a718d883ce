/**
 * Additive-increase / multiplicative-decrease concurrency toward AHDS: start low, add one slot
 * after each window of clean completions, halve on throttling, never above the ceiling. Microsoft
 * advises ramping up gradually and warns that past ~100 concurrent bundles things get worse.
 */
export class AdaptiveLimiter {
  private limitValue: number;
  private active = 0;
  private successesSinceChange = 0;
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
  }

  get limit(): number {
    return this.limitValue;
  }

  get inFlight(): number {
    return this.active;
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
    // One more slot once as many clean completions as the current limit: roughly one per round trip.
    if (++this.successesSinceChange >= this.limitValue && this.limitValue < this.ceiling) {
      this.limitValue++;
      this.peak = Math.max(this.peak, this.limitValue);
      this.successesSinceChange = 0;
      this.wake();
    }
  }

  /** The service throttled us (429): halve. */
  onThrottle(): void {
    this.limitValue = Math.max(this.floor, Math.floor(this.limitValue / 2));
    this.successesSinceChange = 0;
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
