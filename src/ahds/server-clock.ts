/**
 * The target's clock, as seen from here. AHDS stamps `meta.lastUpdated` with its SQL server's clock
 * (fhir-server `MergeResourcesBeginTransaction.sql`, sysutcdatetime()), which need not agree with this
 * host's. Each answer's `Date` header (whole seconds, RFC 1123) was stamped somewhere between our send
 * and our receipt, which bounds the offset server - client:
 *
 *   Date - receivedAt  <=  offset  <  Date + 1000 - sentAt
 *
 * Bounds from many answers tighten to about one round trip. A write stamped before
 * `sentAt + lowerOffset` certainly predates the request: that is how "unchanged" is told apart
 * from "updated" without trusting this host's clock.
 */
export class ServerClock {
  private low = Number.NEGATIVE_INFINITY;
  private high = Number.POSITIVE_INFINITY;

  /** Takes one answer's Date header with the client times around it. */
  observe(dateHeader: unknown, sentAtMs: number, receivedAtMs: number): void {
    const date = typeof dateHeader === 'string' ? Date.parse(dateHeader) : Number.NaN;
    if (Number.isNaN(date)) return;
    const low = date - receivedAtMs;
    const high = date + 1000 - sentAtMs;
    // A bound that contradicts the others means the server's clock jumped: start over from this one.
    if (low >= this.high || high <= this.low) {
      this.low = low;
      this.high = high;
      return;
    }
    this.low = Math.max(this.low, low);
    this.high = Math.min(this.high, high);
  }

  /** Lower bound of the server's time at client time `clientMs` (the client's time when nothing is known). */
  earliestServerTime(clientMs: number): number {
    return Number.isFinite(this.low) ? clientMs + this.low : clientMs;
  }

  /** Width of the uncertainty, in ms (Infinity before the first answer). */
  get uncertaintyMs(): number {
    return this.high - this.low;
  }
}
