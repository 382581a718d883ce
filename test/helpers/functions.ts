import type { HttpHandler } from '@azure/functions';
import { RUN_SUMMARY_EXTENSION } from '../../functions/shared/http';
import { resetConnector } from '../../functions/shared/runtime';
import type { ConnectorOverrides } from '../../src/connector';
import type { Stack } from '../../stack';
import { invokeHttpHandler } from '../../stack/functions-host';
import { captureLogLine } from './log-capture';
import { SETTINGS } from '../../src/config/schema';

/** Everything the handlers logged through their InvocationContext, for the privacy scan. */
export const capturedLogs: string[] = [];

/** Points the function runtime at a stack: its settings into process.env, a fresh connector. */
export function useStack(stack: Stack, settings: Record<string, string> = {}, overrides: ConnectorOverrides = {}): void {
  clearConnectorSettings(process.env);
  Object.assign(process.env, stack.env, {
    RETRY_BASE_DELAY_MS: '20',
    RETRY_MAX_DELAY_MS: '1500',
    AHDS_SERVER_TIME_LIMIT_MS: '300',
    ...settings,
  });
  // A stack without Azurite has no storage: its connector keeps dead letters in memory.
  resetConnector(stack.azurite ? overrides : { state: null, ...overrides });
}

export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The parsed JSON body (undefined when the body is not JSON). */
  json: any;
}

export async function invoke(
  handler: HttpHandler,
  options: { method?: string; url: string; params?: Record<string, string>; query?: Record<string, string>; body?: string },
): Promise<Answer> {
  const url = new URL(`http://localhost:7071/api/${options.url}`);
  for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, v);
  const wire = await invokeHttpHandler(handler, {
    functionName: 'test',
    method: options.method ?? 'POST',
    url: url.toString(),
    headers: { 'content-type': 'application/json' },
    params: options.params,
    body: options.body,
    invocationId: `test-${Math.random().toString(36).slice(2)}`,
    log: (line) => {
      capturedLogs.push(line);
      captureLogLine(line);
    },
  });
  let json: unknown;
  try {
    json = wire.body ? JSON.parse(wire.body) : undefined;
  } catch {
    json = undefined;
  }
  return { ...wire, json };
}

/**
 * Removes every connector setting from an environment, so nothing from the developer's or CI's
 * shell (an Application Insights connection string, a storage account) leaks into a test.
 */
export function clearConnectorSettings(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  for (const { name } of SETTINGS) delete env[name];
  for (const key of Object.keys(env)) if (key.startsWith('AzureWebJobsStorage__')) delete env[key];
  return env;
}

/** The run summary of an answer: its JSON body, or the summary a 422 OperationOutcome carries. */
export function runSummaryOf(body: any): any {
  if (body?.resourceType !== 'OperationOutcome') return body;
  const ext = (body.extension ?? []).find((e: { url: string }) => e.url === RUN_SUMMARY_EXTENSION);
  return ext?.valueString ? JSON.parse(ext.valueString) : undefined;
}

/**
 * Follows a 202 answer to its end as the Functions host would: the work queue drained by the
 * queue-triggered function, then the run's status read through GET /api/runs/{runId}.
 */
export async function completeRun(
  stack: Stack,
  accepted: Answer,
  queueName = process.env.SYNC_QUEUE_NAME || 'fhirsync-work',
): Promise<any> {
  expect(accepted.status).toBe(202);
  const { backfillQueueHandler } = await import('../../functions/backfill-queue');
  const { runStatusHandler } = await import('../../functions/runs');
  const { drainQueue, queueClient } = await import('./incremental-stack');
  await drainQueue(queueClient(stack, queueName), backfillQueueHandler);
  const runId = accepted.json.runId as string;
  const status = await invoke(runStatusHandler, { method: 'GET', url: `runs/${runId}`, params: { runId } });
  expect(status.status).toBe(200);
  return status.json;
}
