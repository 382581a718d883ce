/**
 * The per-instance cap on concurrent requests of the AHDS stand-in, after fhir-server's
 * ThrottlingMiddleware (src/Microsoft.Health.Fhir.Api/Features/Throttling/ThrottlingMiddleware.cs):
 * over `capacity` requests in flight, a request is answered 429 at once (no queue) with
 * `x-ms-retry-after-ms`, which adapts every 500 ms: x1.2 while fewer than 99 % of the requests of the
 * period were admitted, /1.1 otherwise, between 20 ms and 60 s. Load, not dice, makes it throttle.
 */
const TARGET_SUCCESS_PERCENT = 99;
export const MIN_RETRY_AFTER_MS = 20;
export const MAX_RETRY_AFTER_MS = 60_000;
const GROWTH = 1.2;
const DECAY = 1.1;
const SAMPLE_PERIOD_MS = 500;

/** The middleware's body (Api Resources.TooManyConcurrentRequests), application/json, no id. */
export const THROTTLED_BODY = JSON.stringify({
  resourceType: 'OperationOutcome',
  issue: [
    { severity: 'error', code: 'throttled', diagnostics: 'The maximum number of concurrent API calls on this instance was reached.' },
  ],
});

export class ConcurrencyCap {
  private inFlight = 0;
  private admitted = 0;
  private rejected = 0;
  private retryAfter = MIN_RETRY_AFTER_MS;
  private periodStart = Date.now();
  /** Most requests in flight at once (admitted ones). */
  peak = 0;

  constructor(public capacity: number = Number.POSITIVE_INFINITY) {}

  /** Admits a request (true) or refuses it (false: answer 429 with `retryAfterMs`). */
  tryEnter(): boolean {
    this.sample();
    if (this.inFlight >= this.capacity) {
      this.rejected++;
      return false;
    }
    this.inFlight++;
    this.admitted++;
    this.peak = Math.max(this.peak, this.inFlight);
    return true;
  }

  leave(): void {
    this.inFlight--;
  }

  get retryAfterMs(): number {
    this.sample();
    return this.retryAfter;
  }

  /** Headers of the middleware's 429 (HeaderDictionaryExtensions: Retry-After = max(1, round(s))). */
  retryHeaders(): Record<string, string> {
    const ms = this.retryAfterMs;
    return { 'x-ms-retry-after-ms': String(ms), 'retry-after': String(Math.max(1, Math.round(ms / 1000))) };
  }

  /** The sampling loop, run lazily: each elapsed 500 ms period adjusts the wait once. */
  private sample(): void {
    const now = Date.now();
    while (now - this.periodStart >= SAMPLE_PERIOD_MS) {
      const total = this.admitted + this.rejected;
      const successRate = total === 0 ? 100 : (this.admitted * 100) / total;
      this.retryAfter =
        successRate >= TARGET_SUCCESS_PERCENT
          ? Math.max(MIN_RETRY_AFTER_MS, Math.floor(this.retryAfter / DECAY))
          : Math.min(MAX_RETRY_AFTER_MS, Math.floor(this.retryAfter * GROWTH));
      this.admitted = 0;
      this.rejected = 0;
      this.periodStart += SAMPLE_PERIOD_MS;
      // Idle for long: the remaining periods only decay to the floor.
      if (now - this.periodStart > 200 * SAMPLE_PERIOD_MS) this.periodStart = now - ((now - this.periodStart) % SAMPLE_PERIOD_MS);
    }
  }
}
