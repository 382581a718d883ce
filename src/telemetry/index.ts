import { NoopTelemetry, type Telemetry } from './telemetry';

export { EVENTS, METRICS, DEPENDENCIES, type Side } from './names';
export { NoopTelemetry, RecordingTelemetry, type Telemetry, type RunSummary, type DependencyCall } from './telemetry';
export { scrubString, scrubProperties } from './scrub';

export interface TelemetryOptions {
  /** APPLICATIONINSIGHTS_CONNECTION_STRING; telemetry is off (a silent no-op) when empty. */
  connectionString?: string;
  /** ai.cloud.role, e.g. the Function App's name. */
  cloudRole?: string;
  /** Do not keep unsent telemetry on disk (tests, read-only file systems). */
  disableOfflineStorage?: boolean;
  /** 0..1; default 1 (keep everything: the connector's own telemetry is small). */
  samplingRatio?: number;
}

/**
 * The connector's telemetry. Without a connection string this is a NoopTelemetry and the Application
 * Insights SDK is never loaded (loading it takes a second or more).
 */
export function createTelemetry(opts: TelemetryOptions = {}): Telemetry {
  const connectionString = opts.connectionString?.trim();
  if (!connectionString) return new NoopTelemetry();
  // Required here, not imported above, so that nothing of the SDK is touched when telemetry is off.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createAppInsightsTelemetry } = require('./appinsights') as typeof import('./appinsights');
  return createAppInsightsTelemetry({ ...opts, connectionString });
}
