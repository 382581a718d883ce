import { type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { FINAL_STATES } from '../src/state/run-status';
import { requireState } from '../src/sync/incremental';
import { statusUrl } from './shared/async-run';
import { errorResponse, jsonResponse, outcomeResponse } from './shared/http';
import { checkSettingsAtStartup, getConnector, inOperation } from './shared/runtime';
import { httpRoute } from './shared/routes';

checkSettingsAtStartup();

/**
 * GET /api/runs/{runId}: where a long run (202 of sync/run?full, reconcile, deadletters/replay,
 * backfill) stands: state (queued, running, succeeded, partial, failed, skipped), progress, counts,
 * and once final the result or the failure's class and reason. Counts and ids only. 404 when there
 * is no such run.
 */
async function handleRunStatus(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const runId = request.params.runId ?? '';
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(runId))
    return outcomeResponse(400, 'invalid', 'runId must be 1-100 letters, digits, ".", "_" or "-" (as a 202 answer gave it).');
  try {
    const state = requireState(await getConnector());
    const status = await state.runs.get(runId);
    if (!status) return outcomeResponse(404, 'not-found', `No run ${runId}.`);
    const done = FINAL_STATES.includes(status.state);
    const answer = jsonResponse(200, { ...status, statusUrl: statusUrl(request, runId), done });
    if (!done) answer.headers = { ...(answer.headers as Record<string, string>), 'Retry-After': '5' };
    return answer;
  } catch (error) {
    return errorResponse(error, context);
  }
}

export const runStatusHandler = inOperation(handleRunStatus);

httpRoute('runStatus', { methods: ['GET'], authLevel: 'function', route: 'runs/{runId}', handler: runStatusHandler });
