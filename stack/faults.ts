/**
 * Seeded fault injection shared by the OpenEMR and AHDS stand-ins.
 * The same seed and profile give the same sequence of faults, so a failing run can be replayed.
 */

export interface FaultRates {
  /** Probability (0..1) that a request is answered 429. */
  status429?: number;
  status500?: number;
  status503?: number;
  status408?: number;
  /** Probability that the connection is destroyed without an answer. */
  reset?: number;
}

export interface FaultProfile {
  seed?: number;
  rates?: FaultRates;
  /** Added to every request, in milliseconds. */
  latencyMs?: number;
  /** Added per bundle entry (AHDS only), in milliseconds. */
  perEntryLatencyMs?: number;
  /**
   * Back-off asked for by injected 429/503 answers, in ms: sent as x-ms-retry-after-ms, and as
   * Retry-After in whole seconds (at least 1, as AHDS does). Default 1000.
   */
  retryAfterMs?: number;
  /** Access tokens issued from now on expire after this many seconds (early expiry). */
  tokenLifetimeSeconds?: number;
  /**
   * Per batch entry probability of one throttled attempt. AHDS retries a throttled entry once, so a
   * batch stops (that entry and every later one answer 429) with probability about rate² per entry.
   */
  batchThrottleRate?: number;
  /** Paths never faulted (token and metadata endpoints are faulted unless listed). */
  exemptPaths?: RegExp[];
}

export type InjectedFault = { kind: 'status'; status: 429 | 500 | 503 | 408 } | { kind: 'reset' };

/** mulberry32: tiny, fast, good enough for reproducible test faults. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class FaultInjector {
  private profile: FaultProfile = {};
  private random: () => number = seededRandom(1);
  /** Counts of injected faults by kind, for tests and the demo summary. */
  readonly injected: Record<string, number> = {};

  constructor(profile: FaultProfile = {}) {
    this.configure(profile);
  }

  configure(profile: FaultProfile): void {
    this.profile = { ...profile };
    this.random = seededRandom(profile.seed ?? 1);
  }

  get current(): Readonly<FaultProfile> {
    return this.profile;
  }

  /** Decides the fate of one request; null means answer normally. */
  next(path: string): InjectedFault | null {
    if (this.profile.exemptPaths?.some((re) => re.test(path))) return null;
    const rates = this.profile.rates ?? {};
    const roll = this.random();
    let edge = 0;
    const table: Array<[number | undefined, InjectedFault]> = [
      [rates.status429, { kind: 'status', status: 429 }],
      [rates.status500, { kind: 'status', status: 500 }],
      [rates.status503, { kind: 'status', status: 503 }],
      [rates.status408, { kind: 'status', status: 408 }],
      [rates.reset, { kind: 'reset' }],
    ];
    for (const [rate, fault] of table) {
      edge += rate ?? 0;
      if (roll < edge) {
        const key = fault.kind === 'reset' ? 'reset' : String(fault.status);
        this.injected[key] = (this.injected[key] ?? 0) + 1;
        return fault;
      }
    }
    return null;
  }

  /** True when a batch entry should trip the throttle (AHDS stops the batch there). */
  throttleEntry(): boolean {
    const rate = this.profile.batchThrottleRate ?? 0;
    if (rate <= 0) return false;
    const hit = this.random() < rate;
    if (hit) this.injected.batchThrottle = (this.injected.batchThrottle ?? 0) + 1;
    return hit;
  }

  async delay(entries = 0): Promise<void> {
    const ms = (this.profile.latencyMs ?? 0) + entries * (this.profile.perEntryLatencyMs ?? 0);
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** Headers AHDS sends with a throttled answer. */
  retryAfterHeaders(): Record<string, string> {
    const ms = Math.max(0, Math.round(this.profile.retryAfterMs ?? 1000));
    return { 'retry-after': String(Math.max(1, Math.ceil(ms / 1000))), 'x-ms-retry-after-ms': String(ms) };
  }
}
