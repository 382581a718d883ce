import { syncByIdHandler } from './shared/sync-endpoint';
import { checkSettingsAtStartup } from './shared/runtime';
import { httpRoute } from './shared/routes';

checkSettingsAtStartup();

/** POST /api/sync/patients/{id}/everything: the Patient first, then every Observation of it. */
export const syncPatientEverythingHandler = syncByIdHandler('Patient', (sync, id, runId) =>
  sync.syncPatientWithObservations(id, 'http', runId),
);

httpRoute('syncPatientEverything', {
  methods: ['POST'],
  authLevel: 'function',
  route: 'sync/patients/{id}/everything',
  handler: syncPatientEverythingHandler,
});
