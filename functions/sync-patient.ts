import { app } from '@azure/functions';
import { syncByIdHandler } from './shared/sync-endpoint';
import { checkSettingsAtStartup } from './shared/runtime';

checkSettingsAtStartup();

/** POST /api/sync/patients/{id}: reads the Patient from OpenEMR and upserts it into AHDS. */
export const syncPatientHandler = syncByIdHandler('Patient', (sync, id, runId) => sync.syncPatient(id, 'http', runId));

app.http('syncPatient', { methods: ['POST'], authLevel: 'function', route: 'sync/patients/{id}', handler: syncPatientHandler });
