import { AsyncLocalStorage } from 'node:async_hooks';
import type { Side } from './names';
import type { DependencyCall, RunSummary, Telemetry } from './telemetry';

/**
 * The operation (Functions invocation) the current async call chain belongs to. The HTTP clients
 * are built once per worker, so their telemetry cannot be bound to one invocation; reading the
 * operation from async context instead correlates every dependency call with its invocation.
 */
const scope = new AsyncLocalStorage<{ id: string; bound: Map<Telemetry, Telemetry> }>();

export function runInOperation<T>(operationId: string | undefined, fn: () => Promise<T>): Promise<T> {
  return operationId ? scope.run({ id: operationId, bound: new Map() }, fn) : fn();
}

/** Telemetry that tags everything with the operation of the async context it is called from. */
export class OperationScopedTelemetry implements Telemetry {
  constructor(private readonly base: Telemetry) {}

  /** The base bound to the current operation, made once per operation rather than per call. */
  private get target(): Telemetry {
    const op = scope.getStore();
    if (!op) return this.base;
    let bound = op.bound.get(this.base);
    if (!bound) op.bound.set(this.base, (bound = this.base.withOperation(op.id)));
    return bound;
  }

  withOperation(operationId: string | undefined): Telemetry {
    return this.base.withOperation(operationId);
  }
  runCompleted(summary: RunSummary): void {
    this.target.runCompleted(summary);
  }
  dependency(call: DependencyCall): void {
    this.target.dependency(call);
  }
  retry(side: Side, status: number | 'network'): void {
    this.target.retry(side, status);
  }
  authFailure(side: Side, reason: string): void {
    this.target.authFailure(side, reason);
  }
  deadLetter(item: { resourceType: string; id: string; status?: number; reason: string }): void {
    this.target.deadLetter(item);
  }
  unmappedCodes(codes: Array<{ system: string; code: string; count: number }>): void {
    this.target.unmappedCodes(codes);
  }
  reconcileCompleted(summary: Record<string, number | string>): void {
    this.target.reconcileCompleted(summary);
  }
  gauge(name: string, value: number, properties?: Record<string, string>): void {
    this.target.gauge(name, value, properties);
  }
  flush(): Promise<void> {
    return this.base.flush();
  }
}
