import { app, type HttpRequest, type HttpResponseInit, type InvocationContext, type Timer } from '@azure/functions';
import { runReconcile } from '../src/sync/reconcile';
import { acceptRun } from './shared/async-run';
import { outcomeResponse } from './shared/http';
import type { Connector } from '../src/connector';
import { checkSettingsAtStartup, getConnector, inOperation, reportUnfinished, timerRunFailed } from './shared/runtime';
import { httpRoute } from './shared/routes';

checkSettingsAtStartup();

/** Reconciliation on RECONCILE_SCHEDULE (default daily at 02:30), under the sync lease. */
async function handleReconcileTimer(_timer: Timer, context: InvocationContext): Promise<void> {
  const run = { runId: context.invocationId, trigger: 'reconcile' as const, operation: 'reconcile', startedAt: Date.now() };
  let connector: Connector | undefined;
  try {
    connector = await getConnector();
    const outcome = await runReconcile(connector, { trigger: 'reconcile', runId: context.invocationId, log: (m) => context.log(m) });
    if (outcome.skipped) {
      context.log(outcome.skip.message);
      await reportUnfinished(connector, { ...run, status: 'skipped' });
    }
  } catch (error) {
    await reportUnfinished(connector, { ...run, status: 'failed', error });
    timerRunFailed('Reconciliation', error, context);
  }
}

/**
 * POST /api/reconcile[?deleteMode=report-only]: reconciliation on demand. It reads both sides
 * whole, so it answers 202 with a run id and a status URL (GET /api/runs/{runId}, whose result is
 * the summary, counts only) and the queue worker runs it; 409 at once when another run holds the
 * lease. deleteMode may only narrow the setting to report-only, never widen it to delete.
 */
async function handleReconcileHttp(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const mode = request.query.get('deleteMode');
  if (mode !== null && mode !== 'report-only')
    return outcomeResponse(400, 'invalid', 'deleteMode may only be report-only here; deleting is chosen by RECONCILE_DELETE_MODE.');
  return acceptRun(
    request,
    context,
    { operation: 'reconcile', ...(mode ? { deleteMode: 'report-only' as const } : {}) },
    { needsLease: true },
  );
}

export const reconcileTimerHandler = inOperation(handleReconcileTimer);

export const reconcileHttpHandler = inOperation(handleReconcileHttp);

app.timer('reconcileTimer', {
  schedule: '%RECONCILE_SCHEDULE%',
  runOnStartup: false,
  retry: { strategy: 'exponentialBackoff', maxRetryCount: 2, minimumInterval: { minutes: 1 }, maximumInterval: { minutes: 10 } },
  handler: reconcileTimerHandler,
});
httpRoute('reconcile', { methods: ['POST'], authLevel: 'function', route: 'reconcile', handler: reconcileHttpHandler });
