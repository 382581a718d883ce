import { app } from '@azure/functions';
import { syncByIdHandler } from './shared/sync-endpoint';
import { checkSettingsAtStartup } from './shared/runtime';

checkSettingsAtStartup();

/** POST /api/sync/patients/{id}/everything: the Patient first, then every Observation of it. */
export const syncPatientEverythingHandler = syncByIdHandler('Patient', (sync, id, runId) => sync.syncPatientWithObservations(id, 'http', runId));

app.http('syncPatientEverything', {
  methods: ['POST'],
  authLevel: 'function',
  route: 'sync/patients/{id}/everything',
  handler: syncPatientEverythingHandler,
});
