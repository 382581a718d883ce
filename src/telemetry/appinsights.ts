import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
// Types only: the SDK itself is loaded in createAppInsightsTelemetry, so importing this file is free.
import type { TelemetryClient } from 'applicationinsights';
import { EVENTS, METRICS, type Side } from './names';
import { cleanMeasurements, scrubProperties, scrubString } from './scrub';
import { runStatusOf, type DependencyCall, type RunSummary, type Telemetry } from './telemetry';

export interface AppInsightsOptions {
  connectionString: string;
  /** ai.cloud.role of everything sent (the Function App's name reads well in the application map). */
  cloudRole?: string;
  /** The exporter keeps unsent telemetry on disk by default; tests and read-only hosts turn that off. */
  disableOfflineStorage?: boolean;
  /** 0..1 share of dependencies kept when they are not part of a correlated operation; default 1. */
  samplingRatio?: number;
}

/** The few OpenTelemetry API pieces used for correlation, loaded from the SDK's own copy. */
interface OtelApi {
  context: {
    with<T>(ctx: unknown, fn: () => T): T;
    setGlobalContextManager(manager: unknown): boolean;
  };
  trace: {
    setSpanContext(ctx: unknown, spanContext: { traceId: string; spanId: string; traceFlags: number; isRemote?: boolean }): unknown;
  };
  ROOT_CONTEXT: unknown;
}

/** Everything the instances derived by withOperation share: one client, one pipeline. */
interface Shared {
  client: TelemetryClient;
  otel: OtelApi;
}

interface OperationIds {
  traceId: string;
  spanId: string;
  /** What the caller passed (invocation id or traceparent), kept as a searchable property. */
  raw: string;
}

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/i;
const HEX32 = /^[0-9a-f]{32}$/i;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SAMPLED = 1;

/**
 * Maps what the Functions host gives a handler to an Application Insights operation:
 * - a W3C traceparent (InvocationContext.traceContext.traceParent): its trace id becomes operation_Id
 *   and its span id operation_ParentId, so our telemetry lines up with the host's request telemetry;
 * - a GUID (InvocationContext.invocationId) or 32 hex digits: the hex digits become operation_Id;
 * - anything else (a CLI run id): a stable hash of it.
 */
export function operationIdsFor(operationId: string): OperationIds {
  const raw = operationId.trim();
  const tp = TRACEPARENT.exec(raw);
  if (tp && !/^0+$/.test(tp[1]) && !/^0+$/.test(tp[2])) return { traceId: tp[1].toLowerCase(), spanId: tp[2].toLowerCase(), raw };
  let traceId: string;
  if (HEX32.test(raw) && !/^0+$/.test(raw)) traceId = raw.toLowerCase();
  else if (GUID.test(raw) && !/^[0-]+$/.test(raw)) traceId = raw.replace(/-/g, '').toLowerCase();
  else traceId = createHash('sha256').update(raw).digest('hex').slice(0, 32);
  const spanId = createHash('sha256').update(`span:${raw}`).digest('hex').slice(0, 16);
  return { traceId, spanId, raw };
}

const HTTP_METHOD = /^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\b/i;

/** Unmapped codes sent as metrics per run. */
const MAX_UNMAPPED_CODE_METRICS = 50;

export class AppInsightsTelemetry implements Telemetry {
  constructor(
    private readonly shared: Shared,
    private readonly operation?: OperationIds,
  ) {}

  withOperation(operationId: string | undefined): Telemetry {
    if (!operationId || !operationId.trim()) return new AppInsightsTelemetry(this.shared);
    return new AppInsightsTelemetry(this.shared, operationIdsFor(operationId));
  }

  runCompleted(s: RunSummary): void {
    const synced = s.created + s.updated + s.unchanged;
    const processed = synced + s.failed;
    const window = s.windowStart || s.windowEnd ? `${s.windowStart ?? ''}/${s.windowEnd ?? ''}` : undefined;
    this.event(
      EVENTS.syncRun,
      {
        runId: s.runId,
        trigger: s.trigger,
        operation: s.operation,
        status: runStatusOf(s),
        failureClass: s.failureClass,
        window,
        windowStart: s.windowStart,
        windowEnd: s.windowEnd,
      },
      {
        read: s.read,
        created: s.created,
        updated: s.updated,
        unchanged: s.unchanged,
        synced,
        failed: s.failed,
        deadLettered: s.deadLettered,
        durationMs: s.durationMs,
        lagSeconds: s.lagSeconds,
        unmappedCodes: s.unmappedCodes,
      },
    );

    // Metric dimensions stay low-cardinality (no run id): they are pre-aggregated per minute.
    const dims = { trigger: s.trigger, operation: s.operation };
    const types = Object.entries(s.byType ?? {});
    if (types.length > 0) {
      for (const [resourceType, t] of types) {
        this.metric(METRICS.resourcesSynced, t.created + t.updated + t.unchanged, { ...dims, resourceType });
        this.metric(METRICS.resourcesFailed, t.failed, { ...dims, resourceType });
      }
    } else {
      this.metric(METRICS.resourcesSynced, synced, { ...dims, resourceType: 'all' });
      this.metric(METRICS.resourcesFailed, s.failed, { ...dims, resourceType: 'all' });
    }
    if (processed > 0) {
      this.metric(METRICS.successRate, synced / processed, dims);
      this.metric(METRICS.latencyPerResourceMs, s.durationMs / processed, dims);
    }
    if (s.lagSeconds !== undefined) this.metric(METRICS.lagSeconds, s.lagSeconds, dims);
    if (s.unmappedCodes !== undefined) this.metric(METRICS.unmappedCodes, s.unmappedCodes, { ...dims, scope: 'run' });
  }

  dependency(call: DependencyCall): void {
    const name = stripQuery(call.name);
    const method = HTTP_METHOD.exec(name)?.[1]?.toUpperCase() ?? 'HTTP';
    const resultCode = typeof call.resultCode === 'number' ? call.resultCode : scrubString(String(call.resultCode), 64);
    const properties = scrubProperties({
      side: call.side,
      ...(call.requestId ? { requestId: call.requestId } : {}),
      ...this.operationProperty(),
    });
    this.inOperation(() =>
      this.shared.client.trackDependency({
        dependencyTypeName: 'HTTP',
        name: scrubString(name, 256),
        // Not a URL on purpose: the exporter would otherwise rename the dependency after the full path.
        data: scrubString(name, 256),
        target: scrubString(stripQuery(call.target), 256),
        resultCode,
        duration: Math.max(0, call.durationMs),
        success: call.success,
        // http.method makes the exporter file it as an HTTP dependency; it is not kept as a dimension.
        properties: { ...properties, 'http.method': method },
      }),
    );
  }

  retry(side: Side, status: number | 'network'): void {
    this.metric(METRICS.retries, 1, { side, status: String(status) });
  }

  authFailure(side: Side, reason: string): void {
    this.event(EVENTS.authFailure, { side, reason });
    this.metric(METRICS.authFailures, 1, { side });
  }

  deadLetter(item: { resourceType: string; id: string; status?: number; reason: string }): void {
    this.event(EVENTS.deadLetter, {
      resourceType: item.resourceType,
      id: item.id,
      status: item.status === undefined ? undefined : String(item.status),
      reason: item.reason,
    });
  }

  unmappedCodes(codes: Array<{ system: string; code: string; count: number }>): void {
    // The most frequent codes only (callers sort by count): a dimension per code must stay bounded.
    for (const c of codes.slice(0, MAX_UNMAPPED_CODE_METRICS)) {
      this.metric(METRICS.unmappedCodes, c.count, { scope: 'code', system: c.system, code: c.code });
    }
  }

  reconcileCompleted(summary: Record<string, number | string>): void {
    const properties: Record<string, string> = {};
    const measurements: Record<string, number> = {};
    for (const [key, value] of Object.entries(summary)) {
      if (typeof value === 'number') measurements[key] = value;
      else properties[key] = value;
    }
    this.event(EVENTS.reconcile, properties, measurements);
  }

  gauge(name: string, value: number, properties?: Record<string, string>): void {
    this.metric(name, value, properties ?? {});
  }

  async flush(): Promise<void> {
    try {
      await this.shared.client.flush();
    } catch {
      // Telemetry must never fail a sync run.
    }
  }

  private event(name: string, properties: Record<string, unknown>, measurements: Record<string, number | undefined> = {}): void {
    const props = scrubProperties({ ...properties, ...this.operationProperty() });
    const meas = cleanMeasurements(measurements);
    this.inOperation(() => this.shared.client.trackEvent({ name, properties: props, measurements: meas }));
  }

  private metric(name: string, value: number, dimensions: Record<string, unknown>): void {
    if (!Number.isFinite(value)) return;
    const properties = scrubProperties(dimensions);
    this.guard(() => this.shared.client.trackMetric({ name: scrubString(name, 150), value, properties }));
  }

  private operationProperty(): Record<string, string> {
    return this.operation ? { operationId: this.operation.raw } : {};
  }

  /** Runs a track call with the operation as the active OpenTelemetry context, so the exporter tags it. */
  private inOperation(track: () => void): void {
    const op = this.operation;
    if (!op) return this.guard(track);
    const { otel } = this.shared;
    const ctx = otel.trace.setSpanContext(otel.ROOT_CONTEXT, {
      traceId: op.traceId,
      spanId: op.spanId,
      traceFlags: SAMPLED,
      isRemote: true,
    });
    this.guard(() => otel.context.with(ctx, track));
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch {
      // Telemetry must never fail a sync run.
    }
  }
}

function stripQuery(value: string): string {
  const i = value.search(/[?#]/);
  return i === -1 ? value : value.slice(0, i);
}

let contextManagerInstalled = false;

/**
 * Loads the SDK (about a second or more; only when a connection string is configured) and builds an
 * isolated client: its own providers and exporters, no auto-instrumentation, no global distro.
 */
export function createAppInsightsTelemetry(opts: AppInsightsOptions): Telemetry {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ai = require('applicationinsights') as typeof import('applicationinsights');
  // The SDK's own dependencies, resolved from where it is installed so the same copies are shared.
  const sdkRequire = createRequire(require.resolve('applicationinsights'));
  const otel = sdkRequire('@opentelemetry/api') as OtelApi;
  const { resourceFromAttributes } = sdkRequire('@opentelemetry/resources') as {
    resourceFromAttributes(attrs: Record<string, string>): unknown;
  };

  if (!contextManagerInstalled) {
    contextManagerInstalled = true;
    // An isolated client registers no context manager, and without one the operation context set in
    // inOperation would be ignored. If another one is registered already, it serves as well.
    try {
      const nodeRequire = createRequire(sdkRequire.resolve('@opentelemetry/sdk-trace-node'));
      const { AsyncLocalStorageContextManager } = nodeRequire('@opentelemetry/context-async-hooks') as {
        AsyncLocalStorageContextManager: new () => { enable(): unknown };
      };
      otel.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    } catch {
      // Correlation is lost, telemetry still flows.
    }
  }

  const client = new ai.TelemetryClient(opts.connectionString, { useGlobalProviders: false });
  const ratio = opts.samplingRatio === undefined ? 1 : Math.min(1, Math.max(0, opts.samplingRatio));
  client.config.samplingPercentage = ratio * 100;
  client.config.enableUseDiskRetryCaching = !opts.disableOfflineStorage;
  client.config.enableAutoCollectExceptions = false;
  client.config.enableAutoCollectPerformance = false;
  client.config.enableSendLiveMetrics = false;
  client.config.azureMonitorOpenTelemetryOptions = {
    azureMonitorExporterOptions: { connectionString: opts.connectionString, disableOfflineStorage: !!opts.disableOfflineStorage },
    ...(opts.cloudRole ? { resource: resourceFromAttributes({ 'service.name': opts.cloudRole }) as never } : {}),
  };
  client.initialize();
  return new AppInsightsTelemetry({ client, otel });
}
