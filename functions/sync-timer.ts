import { app, type InvocationContext, type Timer } from '@azure/functions';
import { incrementalSync, runLine } from '../src/sync/incremental';
import type { Connector } from '../src/connector';
import { freshnessSourceOf, reportFreshness } from '../src/sync/run-report';
import { checkSettingsAtStartup, getConnector, inOperation, reportUnfinished, timerRunFailed } from './shared/runtime';

checkSettingsAtStartup();

/**
 * The incremental sync on SYNC_SCHEDULE (default every 5 minutes). A run that finds the lease held
 * logs "skipped" and ends; a failed run (a side or storage down) throws, so the retry policy below
 * runs it again, and the watermark stays where it was until a run closes the window. Every run
 * reports: a finished one its run event, a failed or skipped one its run event with status and
 * failure class, and each the freshness per type and the lag from the watermarks (so the lag alert
 * fires in an outage).
 */
async function handleSyncTimer(timer: Timer, context: InvocationContext): Promise<void> {
  if (timer.isPastDue) context.log('Sync timer is past due; running now.');
  const run = { runId: context.invocationId, trigger: 'timer' as const, operation: 'incrementalSync', startedAt: Date.now() };
  let connector: Connector | undefined;
  try {
    connector = await getConnector();
    const outcome = await incrementalSync(connector, {}, (m) => context.log(m)).run({ trigger: 'timer', runId: context.invocationId });
    if (outcome.skipped) {
      context.log(outcome.skip.message);
      await reportUnfinished(connector, { ...run, status: 'skipped' });
      return;
    }
    context.log(runLine(outcome.value));
    await reportFreshness(freshnessSourceOf(connector));
  } catch (error) {
    await reportUnfinished(connector, { ...run, status: 'failed', error });
    timerRunFailed('Incremental sync', error, context);
  }
}

export const syncTimerHandler = inOperation(handleSyncTimer);

app.timer('syncTimer', {
  schedule: '%SYNC_SCHEDULE%',
  runOnStartup: false,
  retry: { strategy: 'exponentialBackoff', maxRetryCount: 3, minimumInterval: { seconds: 15 }, maximumInterval: { minutes: 2 } },
  handler: syncTimerHandler,
});
