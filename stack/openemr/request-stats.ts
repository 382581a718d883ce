/** Requests counted per route template, so a test can assert how many calls an incremental sync made. */
export interface RequestStatsSnapshot {
  requests: number;
  byRoute: Record<string, number>;
}

export class RequestStats {
  private requests = 0;
  private byRoute: Record<string, number> = {};

  record(route: string): void {
    this.requests++;
    this.byRoute[route] = (this.byRoute[route] ?? 0) + 1;
  }

  snapshot(): RequestStatsSnapshot {
    return { requests: this.requests, byRoute: { ...this.byRoute } };
  }

  reset(): void {
    this.requests = 0;
    this.byRoute = {};
  }
}
