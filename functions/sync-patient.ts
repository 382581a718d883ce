import { syncByIdHandler } from './shared/sync-endpoint';
import { checkSettingsAtStartup } from './shared/runtime';
import { httpRoute } from './shared/routes';

checkSettingsAtStartup();

/** POST /api/sync/patients/{id}: reads the Patient from OpenEMR and upserts it into AHDS. */
export const syncPatientHandler = syncByIdHandler('Patient', (sync, id, runId) => sync.syncPatient(id, 'http', runId));

httpRoute('syncPatient', { methods: ['POST'], authLevel: 'function', route: 'sync/patients/{id}', handler: syncPatientHandler });
