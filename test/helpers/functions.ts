import { HttpRequest, InvocationContext, type HttpHandler } from '@azure/functions';
import { resetConnector } from '../../functions/shared/runtime';
import type { ConnectorOverrides } from '../../src/connector';
import type { Stack } from '../../stack';
import { toWire } from '../../stack/functions-host';
import { captureLogLine } from './log-capture';

/** Everything the handlers logged through their InvocationContext, for the privacy scan. */
export const capturedLogs: string[] = [];

/** Points the function runtime at a stack: its settings into process.env, a fresh connector. */
export function useStack(stack: Stack, settings: Record<string, string> = {}, overrides: ConnectorOverrides = {}): void {
  for (const key of Object.keys(process.env)) if (/^(OPENEMR_|AHDS_|AZURE_|SYNC_|RETRY_|HTTP_|MAPPING_|PRIVACY_|DEID_|RECONCILE_)/.test(key)) delete process.env[key];
  Object.assign(process.env, stack.env, { RETRY_BASE_DELAY_MS: '20', RETRY_MAX_DELAY_MS: '1500', ...settings });
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

export async function invoke(handler: HttpHandler, options: { method?: string; url: string; params?: Record<string, string>; query?: Record<string, string>; body?: string }): Promise<Answer> {
  const request = new HttpRequest({
    method: options.method ?? 'POST',
    url: `http://localhost:7071/api/${options.url}`,
    params: options.params ?? {},
    query: options.query ?? {},
    headers: { 'content-type': 'application/json' },
    ...(options.body !== undefined ? { body: { string: options.body } } : {}),
  });
  const context = new InvocationContext({
    invocationId: `test-${Math.random().toString(36).slice(2)}`,
    functionName: 'test',
    logHandler: (level, ...args) => {
      const line = `${level}: ${args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}`;
      capturedLogs.push(line);
      captureLogLine(line);
    },
  });
  const wire = await toWire(await handler(request, context));
  let json: unknown;
  try {
    json = wire.body ? JSON.parse(wire.body) : undefined;
  } catch {
    json = undefined;
  }
  return { ...wire, json };
}
