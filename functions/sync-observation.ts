import { syncByIdHandler } from './shared/sync-endpoint';
import { checkSettingsAtStartup } from './shared/runtime';
import { httpRoute } from './shared/routes';

checkSettingsAtStartup();

/** POST /api/sync/observations/{id}: syncs the Observation's Patient (if needed) and the Observation. */
export const syncObservationHandler = syncByIdHandler('Observation', (sync, id, runId) => sync.syncObservation(id, 'http', runId));

httpRoute('syncObservation', {
  methods: ['POST'],
  authLevel: 'function',
  route: 'sync/observations/{id}',
  handler: syncObservationHandler,
});
