import { type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { incrementalSync, runLine } from '../src/sync/incremental';
import { acceptRun } from './shared/async-run';
import { errorResponse, instantParam, outcomeResponse, summaryResponse } from './shared/http';
import type { Connector } from '../src/connector';
import { checkSettingsAtStartup, getConnector, inOperation, reportUnfinished } from './shared/runtime';
import { httpRoute } from './shared/routes';

checkSettingsAtStartup();

/** True when the caller asks for the asynchronous pattern (FHIR's `Prefer: respond-async`). */
export function prefersAsync(request: HttpRequest): boolean {
  return /(^|[,;\s])respond-async($|[,;\s])/i.test(request.headers.get('prefer') ?? '');
}

/**
 * POST /api/sync/run[?since=<ISO date-time>|?full=true]. The incremental run (no parameters) runs
 * in the request, under the same lease as the timer and the CLI: 200 with the summary; 409 when
 * another run holds the lease; 503 when a side or storage is down (the watermark stays). A full run
 * or one from `since` can take longer than the 230 s an HTTP answer may take in Azure: it answers
 * 202 with a run id and a status URL (GET /api/runs/{runId}), and the queue worker runs it. So does
 * any run asked with `Prefer: respond-async`.
 */
async function handleSyncRun(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const since = instantParam(request, 'since');
  if (typeof since === 'object') return since;
  const fullRaw = request.query.get('full');
  if (fullRaw !== null && !['true', 'false'].includes(fullRaw)) return outcomeResponse(400, 'invalid', 'full must be true or false.');
  const full = fullRaw === 'true';
  if (since !== undefined && full) return outcomeResponse(400, 'invalid', 'Give since or full=true, not both.');
  if (full || since !== undefined || prefersAsync(request)) {
    return acceptRun(
      request,
      context,
      { operation: 'sync', ...(full ? { full } : {}), ...(since !== undefined ? { since } : {}) },
      { needsLease: true },
    );
  }
  const run = { runId: context.invocationId, trigger: 'http' as const, operation: 'incrementalSync', startedAt: Date.now() };
  let connector: Connector | undefined;
  try {
    connector = await getConnector();
    const outcome = await incrementalSync(connector, {}, (m) => context.log(m)).run({ trigger: 'http', runId: context.invocationId });
    if (outcome.skipped) {
      context.log(outcome.skip.message);
      await reportUnfinished(connector, { ...run, status: 'skipped' });
      return outcomeResponse(409, 'conflict', outcome.skip.message);
    }
    context.log(runLine(outcome.value));
    return summaryResponse(outcome.value);
  } catch (error) {
    await reportUnfinished(connector, { ...run, status: 'failed', error });
    return errorResponse(error, context);
  }
}

export const syncRunHandler = inOperation(handleSyncRun);

httpRoute('syncRun', { methods: ['POST'], authLevel: 'function', route: 'sync/run', handler: syncRunHandler });
