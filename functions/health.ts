import { type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { ConfigError, loadConfig } from '../src/config/load';
import { checkAhds } from '../src/config/preflight';
import { runFailureMessage } from '../src/state/errors';
import { openEmrNow } from '../src/sync/incremental';
import { jsonResponse } from './shared/http';
import { getConnector, inOperation } from './shared/runtime';
import { httpRoute } from './shared/routes';

export interface HealthCheck {
  name: 'settings' | 'storage' | 'openemr' | 'openemr-token' | 'entra-token' | 'fhir-access';
  ok: boolean;
  message: string;
  /** The setting to look at when the check failed. */
  setting?: string;
}

/**
 * GET /api/health, for operators after a deployment or during an incident: the settings resolved
 * (Key Vault references included), Azure Storage reachable, OpenEMR reachable and issuing a token to
 * the client, Entra issuing a token for the FHIR service, and the FHIR service accepting it with a
 * data role (a Patient count). 200 when all pass, 503 with the failing checks otherwise. Counts and
 * sentences only: no resource, no id, no token. Each check runs only if what it needs passed.
 */
async function handleHealth(_request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const checks: HealthCheck[] = [];
  const answer = () => {
    const ok = checks.every((c) => c.ok);
    return jsonResponse(ok ? 200 : 503, {
      status: ok ? 'ok' : checks[0]?.name === 'settings' && !checks[0].ok ? 'not-configured' : 'failing',
      checks,
    });
  };
  try {
    loadConfig();
    checks.push({ name: 'settings', ok: true, message: 'Every setting is present and valid (Key Vault references resolved).' });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    checks.push({ name: 'settings', ok: false, setting: error.setting, message: `Not configured: set ${error.setting}. ${error.message}` });
    return answer();
  }
  let connector;
  try {
    connector = await getConnector();
  } catch (error) {
    checks.push({
      name: 'settings',
      ok: false,
      message: runFailureMessage(error),
      ...(error instanceof ConfigError ? { setting: error.setting } : {}),
    });
    return answer();
  }
  const c = connector;
  const attempt = async (name: HealthCheck['name'], ok: string, fn: () => Promise<unknown>, setting?: string) => {
    try {
      await fn();
      checks.push({ name, ok: true, message: ok });
    } catch (error) {
      checks.push({ name, ok: false, message: runFailureMessage(error), ...(setting ? { setting } : {}) });
    }
  };
  await attempt(
    'storage',
    `Azure Storage answers (${c.state?.storage.where ?? 'not configured'}).`,
    async () => {
      if (!c.state) throw new ConfigError('AzureWebJobsStorage', 'Setting AzureWebJobsStorage is required.');
      await c.state.lease.peek('sync');
    },
    'AzureWebJobsStorage',
  );
  await attempt('openemr', 'OpenEMR answers its CapabilityStatement.', () => openEmrNow(c.reader), 'OPENEMR_BASE_URL');
  await attempt('openemr-token', 'OpenEMR issues a token to the client.', () => c.openemrAuth.getToken(), 'OPENEMR_CLIENT_ID');
  const ahds = await checkAhds(c.config, { credential: c.getCredential(), get: (path, params) => c.writer.http.get(path, { params }) });
  for (const step of ahds.steps)
    checks.push({ name: step.step, ok: step.ok, message: step.message, ...(step.setting ? { setting: step.setting } : {}) });
  for (const failed of checks.filter((x) => !x.ok)) context.warn(`Health: ${failed.name} failing: ${failed.message}`);
  return answer();
}

export const healthHandler = inOperation(handleHealth);

httpRoute('health', { methods: ['GET'], authLevel: 'function', route: 'health', handler: healthHandler });
