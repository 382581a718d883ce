import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { openEmrNow, requireState, runLine } from '../src/sync/incremental';
import { floorSecond, iso } from '../src/sync/incremental-windows';
import { planBackfill } from '../src/sync/planner';
import { enqueueWorkItems, handleWorkMessage, workDepsOf } from '../src/sync/work-queue';
import { errorResponse, instantParam, jsonResponse, outcomeResponse } from './shared/http';
import { checkSettingsAtStartup, getConnector, inOperation } from './shared/runtime';

checkSettingsAtStartup();

/**
 * Consumes one backfill work item from SYNC_QUEUE_NAME. A failure throws so the host delivers it
 * again (host.json maxDequeueCount 5); on the last delivery the item is recorded as a dead letter
 * (resourceType "WorkItem") instead of vanishing into the poison queue, and replays like any other.
 */
async function handleBackfillQueue(message: unknown, context: InvocationContext): Promise<void> {
  const dequeueCount = Number(context.triggerMetadata?.dequeueCount ?? 1) || 1;
  const connector = await getConnector();
  const outcome = await handleWorkMessage({ ...workDepsOf(connector), log: (m) => context.warn(m) }, message, dequeueCount, context.invocationId);
  if (outcome.outcome === 'dead-lettered') {
    context.warn(`Work item dead-lettered: ${outcome.reason}`);
    return;
  }
  context.log(runLine(outcome.summary));
}

/**
 * POST /api/backfill[?since=&until=&windowDays=]: plans a backfill (Patient and Observation windows) and
 * enqueues it for the queue-triggered workers. `until` defaults to OpenEMR's now minus the lag.
 * Answers 202 with what was enqueued. Watermarks are not touched: the incremental run carries on.
 */
async function handlePlanBackfill(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const since = instantParam(request, 'since');
  if (typeof since === 'object') return since;
  const untilRaw = instantParam(request, 'until');
  if (typeof untilRaw === 'object') return untilRaw;
  const windowDaysRaw = request.query.get('windowDays');
  if (windowDaysRaw !== null && !/^\d{1,5}$/.test(windowDaysRaw)) return outcomeResponse(400, 'invalid', 'windowDays must be a whole number of days.');
  const windowSeconds = windowDaysRaw === null ? undefined : Math.max(1, Number(windowDaysRaw)) * 86400;
  try {
    const connector = await getConnector();
    const state = requireState(connector);
    const until = untilRaw ?? iso(floorSecond((await openEmrNow(connector.reader)) - connector.config.sync.lagSeconds * 1000));
    const plan = await planBackfill(connector.reader, { since, until, pageSize: connector.config.openemr.pageSize, windowSeconds });
    const queue = await state.storage.queue(state.queueName);
    await enqueueWorkItems(queue, plan.items);
    context.log(`Backfill planned: ${plan.patientWindows} Patient window(s), ${plan.observationWindows} Observation window(s), ${plan.probes} probe(s).`);
    const { items: _items, ...counts } = plan;
    return jsonResponse(202, { enqueued: plan.items.length, queue: state.queueName, since, until, ...counts });
  } catch (error) {
    return errorResponse(error, context);
  }
}

export const backfillQueueHandler = inOperation(handleBackfillQueue);

export const planBackfillHandler = inOperation(handlePlanBackfill);

app.storageQueue('backfillQueue', { queueName: '%SYNC_QUEUE_NAME%', connection: 'AzureWebJobsStorage', handler: backfillQueueHandler });
app.http('planBackfill', { methods: ['POST'], authLevel: 'function', route: 'backfill', handler: planBackfillHandler });
