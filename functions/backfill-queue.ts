import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { runLine } from '../src/sync/incremental';
import { executeRun, parseRunMessage, recordWorkItem, untagWorkItem } from '../src/sync/async-runs';
import { handleWorkMessage, workDepsOf } from '../src/sync/work-queue';
import { acceptRun } from './shared/async-run';
import { instantParam, outcomeResponse } from './shared/http';
import { checkSettingsAtStartup, getConnector, inOperation } from './shared/runtime';
import { httpRoute } from './shared/routes';

checkSettingsAtStartup();

/**
 * Consumes one message of SYNC_QUEUE_NAME: a run requested over HTTP (full sync, reconcile, replay,
 * backfill planning), run to its end with its status recorded, or one backfill work item. A work
 * item's failure throws so the host delivers it again (host.json maxDequeueCount 5); on the last
 * delivery the item is recorded as a dead letter (resourceType "WorkItem") instead of vanishing
 * into the poison queue, and replays like any other. A work item of a run counts in its status.
 */
async function handleBackfillQueue(message: unknown, context: InvocationContext): Promise<void> {
  const connector = await getConnector();
  const run = parseRunMessage(message);
  if (run) {
    const status = await executeRun(connector, run, (m) => context.log(m));
    context.log(`Run ${run.runId} (${run.operation}): ${status?.state ?? 'unknown'}.`);
    return;
  }
  const dequeueCount = Number(context.triggerMetadata?.dequeueCount ?? 1) || 1;
  const tagged = untagWorkItem(message);
  const outcome = await handleWorkMessage(
    { ...workDepsOf(connector), log: (m) => context.warn(m) },
    tagged.item,
    dequeueCount,
    context.invocationId,
  );
  if (tagged.run && connector.state) {
    await recordWorkItem(connector.state.runs, tagged.run, outcome).catch((error: unknown) =>
      context.warn(`Run ${tagged.run!.id}: work item ${tagged.run!.n} not counted (${(error as Error)?.name ?? 'Error'}).`),
    );
  }
  if (outcome.outcome === 'dead-lettered') {
    context.warn(`Work item dead-lettered: ${outcome.reason}`);
    return;
  }
  context.log(runLine(outcome.summary));
}

/**
 * POST /api/backfill[?since=&until=&windowDays=]: a backfill (Patient and Observation windows) for
 * the queue-triggered workers. Planning probes OpenEMR and can take long itself, so the answer is
 * 202 with a run id and a status URL (GET /api/runs/{runId}: the plan's counts, then items done of
 * total). `until` defaults to OpenEMR's now minus the lag. Watermarks are not touched: the
 * incremental run carries on.
 */
async function handlePlanBackfill(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const since = instantParam(request, 'since');
  if (typeof since === 'object') return since;
  const until = instantParam(request, 'until');
  if (typeof until === 'object') return until;
  if (since !== undefined && until !== undefined && Date.parse(since) >= Date.parse(until))
    return outcomeResponse(400, 'invalid', 'since must be before until.');
  const windowDaysRaw = request.query.get('windowDays');
  if (windowDaysRaw !== null && (!/^\d{1,5}$/.test(windowDaysRaw) || Number(windowDaysRaw) < 1))
    return outcomeResponse(400, 'invalid', 'windowDays must be a whole number of days from 1 to 99999.');
  const windowSeconds = windowDaysRaw === null ? undefined : Number(windowDaysRaw) * 86400;
  return acceptRun(request, context, {
    operation: 'backfill',
    ...(since ? { since } : {}),
    ...(until ? { until } : {}),
    ...(windowSeconds ? { windowSeconds } : {}),
  });
}

export const backfillQueueHandler = inOperation(handleBackfillQueue);

export const planBackfillHandler = inOperation(handlePlanBackfill);

app.storageQueue('backfillQueue', { queueName: '%SYNC_QUEUE_NAME%', connection: 'AzureWebJobsStorage', handler: backfillQueueHandler });
httpRoute('planBackfill', { methods: ['POST'], authLevel: 'function', route: 'backfill', handler: planBackfillHandler });
