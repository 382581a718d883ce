/**
 * The stand-in's clock: real time plus an offset that tests move forward. It drives both the
 * lastUpdated of new writes and access-token expiry, so "wait five minutes" costs nothing in a test.
 */
export class ServerClock {
  private offsetMs = 0;

  constructor(private readonly base: () => number = Date.now) {}

  nowMs(): number {
    return this.base() + this.offsetMs;
  }

  /** Whole seconds: OpenEMR stores DATETIME columns, so everything it emits has one-second precision. */
  nowSeconds(): number {
    return Math.floor(this.nowMs() / 1000);
  }

  /** Moves forward only; a clock that goes back would make lastUpdated windows meaningless. */
  advance(seconds: number): number {
    if (!Number.isFinite(seconds) || seconds < 0) throw new Error('advanceSeconds must be a non-negative number');
    this.offsetMs += seconds * 1000;
    return this.nowMs();
  }
}
