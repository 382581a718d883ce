import type { Side } from './names';

/** The counts every run reports, in its answer, its event and its CLI line. */
export interface RunCounts {
  read: number;
  created: number;
  updated: number;
  unchanged: number;
  failed: number;
  deadLettered: number;
  durationMs: number;
}

/** Figures of one sync run. Identifiers and counts only: never resource content. */
export interface RunSummary extends RunCounts {
  runId: string;
  trigger: 'http' | 'timer' | 'queue' | 'cli' | 'replay' | 'reconcile' | 'demo';
  operation: string;
  windowStart?: string;
  windowEnd?: string;
  /** Seconds between the end of the run and the window's upper bound (incremental runs). */
  lagSeconds?: number;
  byType?: Record<string, { created: number; updated: number; unchanged: number; failed: number }>;
  unmappedCodes?: number;
}

export interface DependencyCall {
  side: Side;
  /** Method and path template, e.g. "GET /Observation" (ids are not patient data, but templates group better). */
  name: string;
  target: string;
  resultCode: number | string;
  durationMs: number;
  success: boolean;
  /** The server's correlation id (AHDS: X-Request-Id), when it sent one. */
  requestId?: string;
}

/**
 * What the core reports. The Application Insights implementation is the only importer of the SDK;
 * everything takes this interface so tests can record calls and production can stay silent
 * when no connection string is set.
 */
export interface Telemetry {
  /** Correlates everything that follows with a Functions invocation (operation id). */
  withOperation(operationId: string | undefined): Telemetry;
  runCompleted(summary: RunSummary): void;
  dependency(call: DependencyCall): void;
  retry(side: Side, status: number | 'network'): void;
  authFailure(side: Side, reason: string): void;
  deadLetter(item: { resourceType: string; id: string; status?: number; reason: string }): void;
  unmappedCodes(codes: Array<{ system: string; code: string; count: number }>): void;
  reconcileCompleted(summary: Record<string, number | string>): void;
  gauge(name: string, value: number, properties?: Record<string, string>): void;
  flush(): Promise<void>;
}

export class NoopTelemetry implements Telemetry {
  withOperation(): Telemetry {
    return this;
  }
  runCompleted(): void {}
  dependency(): void {}
  retry(): void {}
  authFailure(): void {}
  deadLetter(): void {}
  unmappedCodes(): void {}
  reconcileCompleted(): void {}
  gauge(): void {}
  async flush(): Promise<void> {}
}

/** Keeps every call in memory, with the operation it was made under: for tests, the demo and the CLI. */
export class RecordingTelemetry implements Telemetry {
  constructor(
    readonly calls: Array<{ kind: string; data: unknown; operationId?: string }> = [],
    private readonly operationId?: string,
  ) {}
  private push(kind: string, data: unknown): void {
    this.calls.push({ kind, data, ...(this.operationId ? { operationId: this.operationId } : {}) });
  }
  withOperation(operationId: string | undefined): Telemetry {
    return new RecordingTelemetry(this.calls, operationId);
  }
  runCompleted(summary: RunSummary): void {
    this.push('run', summary);
  }
  dependency(call: DependencyCall): void {
    this.push('dependency', call);
  }
  retry(side: Side, status: number | 'network'): void {
    this.push('retry', { side, status });
  }
  authFailure(side: Side, reason: string): void {
    this.push('authFailure', { side, reason });
  }
  deadLetter(item: { resourceType: string; id: string; status?: number; reason: string }): void {
    this.push('deadLetter', item);
  }
  unmappedCodes(codes: Array<{ system: string; code: string; count: number }>): void {
    this.push('unmapped', codes);
  }
  reconcileCompleted(summary: Record<string, number | string>): void {
    this.push('reconcile', summary);
  }
  gauge(name: string, value: number, properties?: Record<string, string>): void {
    this.push('gauge', { name, value, properties });
  }
  async flush(): Promise<void> {}
  count(kind: string): number {
    return this.calls.filter((c) => c.kind === kind).length;
  }
}
