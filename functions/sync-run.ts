import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { incrementalSync, runLine } from '../src/sync/incremental';
import { errorResponse, instantParam, outcomeResponse, summaryResponse } from './shared/http';
import { checkSettingsAtStartup, getConnector, inOperation } from './shared/runtime';

checkSettingsAtStartup();

/**
 * POST /api/sync/run[?since=<ISO date-time>|?full=true]: the incremental run on demand, under the
 * same lease as the timer and the CLI. 200 with the summary; 409 with an OperationOutcome when
 * another run holds the lease (nothing is written); 503 when a side or storage is down (the
 * watermark stays where it was).
 */
async function handleSyncRun(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const since = instantParam(request, 'since');
  if (typeof since === 'object') return since;
  const fullRaw = request.query.get('full');
  if (fullRaw !== null && !['true', 'false'].includes(fullRaw)) return outcomeResponse(400, 'invalid', 'full must be true or false.');
  const full = fullRaw === 'true';
  if (since !== undefined && full) return outcomeResponse(400, 'invalid', 'Give since or full=true, not both.');
  try {
    const connector = await getConnector();
    const outcome = await incrementalSync(connector, {}, (m) => context.log(m)).run({ trigger: 'http', since, full, runId: context.invocationId });
    if (outcome.skipped) {
      context.log(outcome.skip.message);
      return outcomeResponse(409, 'conflict', outcome.skip.message);
    }
    context.log(runLine(outcome.value));
    return summaryResponse(outcome.value);
  } catch (error) {
    return errorResponse(error, context);
  }
}

export const syncRunHandler = inOperation(handleSyncRun);

app.http('syncRun', { methods: ['POST'], authLevel: 'function', route: 'sync/run', handler: syncRunHandler });
