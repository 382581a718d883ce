import { app, type InvocationContext, type Timer } from '@azure/functions';
import { incrementalSync, runLine } from '../src/sync/incremental';
import { checkSettingsAtStartup, getConnector, inOperation, timerRunFailed } from './shared/runtime';

checkSettingsAtStartup();

/**
 * The incremental sync on SYNC_SCHEDULE (default every 5 minutes). A run that finds the lease held
 * logs "skipped" and ends; a failed run (a side or storage down) throws, so the retry policy below
 * runs it again, and the watermark stays where it was until a run closes the window.
 */
async function handleSyncTimer(timer: Timer, context: InvocationContext): Promise<void> {
  if (timer.isPastDue) context.log('Sync timer is past due; running now.');
  try {
    const connector = await getConnector();
    const outcome = await incrementalSync(connector, {}, (m) => context.log(m)).run({ trigger: 'timer', runId: context.invocationId });
    if (outcome.skipped) {
      context.log(outcome.skip.message);
      return;
    }
    context.log(runLine(outcome.value));
  } catch (error) {
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
