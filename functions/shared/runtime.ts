import type { InvocationContext } from '@azure/functions';
import { ConfigError, loadConfig, type Config } from '../../src/config/load';
import { createConnector, type Connector, type ConnectorOverrides } from '../../src/connector';
import { classifyRunError, runFailureMessage } from '../../src/state/errors';
import { freshnessSourceOf, reportUnfinishedRun, type UnfinishedRun } from '../../src/sync/run-report';
import { createTelemetry } from '../../src/telemetry';
import { OperationScopedTelemetry, runInOperation } from '../../src/telemetry/operation-scope';

/**
 * The connector of this Functions worker, built on first use from the app settings and shared by
 * every invocation (token caches, limiter and HTTP agents live as long as the worker).
 */
let connector: Promise<Connector> | undefined;
let overrides: ConnectorOverrides = {};

export function getConnector(): Promise<Connector> {
  connector ??= build().catch((error: unknown) => {
    connector = undefined;
    throw error;
  });
  return connector;
}

async function build(): Promise<Connector> {
  const config = loadConfig();
  const base =
    overrides.telemetry ?? createTelemetry({ connectionString: config.telemetry.connectionString, cloudRole: cloudRoleOf(config) });
  return createConnector(config, { ...overrides, telemetry: new OperationScopedTelemetry(base) });
}

/** The cloud role of the connector's telemetry: the Function App's name, as the host's own telemetry has it. */
export function cloudRoleOf(config: Config): string {
  return config.telemetry.cloudRole ?? 'openemr-ahds-sync';
}

/**
 * Reports a run that did not finish (failed or skipped): its run event with status, failure class
 * and the lag from the stored watermarks, so the alerts see an outage. Never throws.
 */
export async function reportUnfinished(connector: Connector | undefined, run: UnfinishedRun): Promise<void> {
  if (!connector) return;
  await reportUnfinishedRun(freshnessSourceOf(connector), run).catch(() => undefined);
}

/** Drops the cached connector (tests change settings between cases) and sets overrides for the next. */
export function resetConnector(next: ConnectorOverrides = {}): void {
  connector = undefined;
  overrides = next;
}

/**
 * Checks the settings when the worker loads the functions. A missing or malformed setting (an
 * unresolved Key Vault reference right after `azd up`, before the secrets are stored) is logged as
 * one sentence naming it, and the app starts anyway: every HTTP call then answers 503 "Not
 * configured: set X" and /api/health says what is missing, instead of no function loading at all.
 * Outside the Functions host (tests, CLI) nothing is checked at import.
 */
let reported = false;
export function checkSettingsAtStartup(): Config | undefined {
  if (!process.env.FUNCTIONS_WORKER_RUNTIME || process.env.FHIRSYNC_SKIP_STARTUP_CHECK === 'true') return undefined;
  try {
    return loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // Only the sentence, once per worker: a stack trace would bury it in the host log.
    if (!reported) console.error(`Not configured: set ${error.setting}. ${error.message}`);
    reported = true;
    return undefined;
  }
}

/** The operation id of an invocation: its W3C traceparent when the host gives one, else its id. */
export function operationIdOf(context: { invocationId: string; traceContext?: { traceParent?: string | null } }): string {
  return context.traceContext?.traceParent ?? context.invocationId;
}

/**
 * Runs a handler inside its invocation's operation scope, so everything the core reports while
 * serving it (runs, dead letters, every OpenEMR and AHDS call) is correlated with the invocation.
 */
export function inOperation<I, R>(
  handler: (input: I, context: InvocationContext) => Promise<R>,
): (input: I, context: InvocationContext) => Promise<R> {
  return (input, context) => runInOperation(operationIdOf(context), () => handler(input, context));
}

/**
 * A timer run that failed: logged (scrubbed), then thrown so the timer's retry policy runs it
 * again; except when it lost the sync lease, since another run has it and a retry would only lose
 * it again.
 */
export function timerRunFailed(what: string, error: unknown, context: InvocationContext): void {
  context.error(`${what} failed: ${runFailureMessage(error)}`);
  if (classifyRunError(error)?.status === 409) return;
  throw error;
}
