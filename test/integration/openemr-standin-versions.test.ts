/**
 * OpenEMR stand-in as a version matrix (stack/openemr/versions.ts): what each release answers to
 * the same request. Each test cites the OpenEMR code it follows.
 */
import { FhirResource, OPENEMR_VERSIONS, OpenEmrStandIn, startOpenEmrStandIn } from '../../stack/openemr';
import { exportJWK, generateKeyPair } from 'jose';
import { assertionForm, entryIds, fhirGet, getAccessToken, postToken, signAssertion } from '../helpers/openemr-standin-client';

const uuid = (n: number, prefix: string) => `${prefix}-0000-4000-8000-${String(n).padStart(12, '0')}`;
const patient = (n: number): FhirResource => ({ resourceType: 'Patient', id: uuid(n, 'aaaaaaaa'), name: [{ family: `Family${n}` }] });
const vital = (n: number, patientN: number): FhirResource => ({
  resourceType: 'Observation',
  id: uuid(n, 'bbbbbbbb'),
  status: 'final',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
  code: { coding: [{ system: 'http://loinc.org', code: '8302-2' }] },
  subject: { reference: `Patient/${uuid(patientN, 'aaaaaaaa')}` },
  effectiveDateTime: '2024-03-01T10:00:00-05:00',
  valueQuantity: { value: 170, unit: 'cm', system: 'http://unitsofmeasure.org', code: 'cm' },
});

async function withVersion(
  version: (typeof OPENEMR_VERSIONS)[number],
  fn: (s: OpenEmrStandIn, token: string) => Promise<void>,
): Promise<void> {
  const s = await startOpenEmrStandIn({ dataDir: null, version });
  try {
    for (let n = 1; n <= 3; n++) s.store.put(patient(n));
    for (let n = 1; n <= 3; n++) s.store.put(vital(n, n));
    await fn(s, await getAccessToken(s, 'system/Patient.read system/Observation.read'));
  } finally {
    await s.close();
  }
}

describe('per-release answers', () => {
  // FhirMetaDataRestController.php:73 (date("Y-m-d")) and :85 (composer.json "version").
  test.each([
    ['7.0.2', '7.0.2'],
    ['7.0.3', '7.0.3'],
    ['7.0.4', '7.0.4'],
    ['master', '8.2.0-dev'],
  ] as const)('/metadata of %s reports software.version %s and a date-only date', (version, software) =>
    withVersion(version, async (s) => {
      const res = await fhirGet(s, '/metadata');
      expect(res.body.software.version).toBe(software);
      expect(res.body.date).toMatch(/^\d{4}-\d\d-\d\d$/);
    }),
  );

  // 7.0.2 ResourceServiceSearchTrait.php:46-57: no `continue` after a special column, so _count,
  // _offset and _sort reach createSearchParameterForField and throw; the controllers answer an empty
  // 200 bundle. Fixed in 7.0.3 by openemr#8129.
  test('7.0.2 answers any search carrying _count, _offset or _sort with a 200 empty bundle', () =>
    withVersion('7.0.2', async (s, token) => {
      for (const path of [
        '/Patient?_count=2',
        '/Patient?_offset=0',
        '/Patient?_sort=_lastUpdated',
        '/Observation?_count=10',
        '/Observation?patient=' + uuid(1, 'aaaaaaaa') + '&_count=10',
      ]) {
        const res = await fhirGet(s, path, token);
        expect([path, res.status, res.body.total]).toEqual([path, 200, 0]);
      }
      expect((await fhirGet(s, '/Patient', token)).body.total).toBe(3);
      expect((await fhirGet(s, '/Observation', token)).body.total).toBe(3);
    }));

  test.each(['7.0.3', '7.0.4', 'master'] as const)('%s pages Patients with _count/_offset/_sort', (version) =>
    withVersion(version, async (s, token) => {
      const res = await fhirGet(s, '/Patient?_count=2&_offset=2&_sort=_lastUpdated', token);
      expect(entryIds(res.body)).toEqual([uuid(3, 'aaaaaaaa')]);
    }),
  );

  // 7.0.2 FhirObservationService::loadSearchParameters lists patient, code, category, date, _id only
  // (_lastUpdated came with openemr#7754, 7.0.2.2): an unsupported field, so an empty bundle.
  test('7.0.2 has no Observation _lastUpdated: an empty bundle, while Patient _lastUpdated works', () =>
    withVersion('7.0.2', async (s, token) => {
      expect((await fhirGet(s, '/Observation?_lastUpdated=ge2000-01-01', token)).body.total).toBe(0);
      expect((await fhirGet(s, '/Patient?_lastUpdated=ge2000-01-01', token)).body.total).toBe(3);
    }));

  test.each(['7.0.3', '7.0.4', 'master'] as const)('%s filters Observations by _lastUpdated', (version) =>
    withVersion(version, async (s, token) => {
      expect((await fhirGet(s, '/Observation?_lastUpdated=ge2000-01-01', token)).body.total).toBe(3);
    }),
  );

  // 7.0.2 FhirObservationVitalsService.php:424 setLastUpdated(UtilsService::getDateFormattedAsUTC()).
  test('7.0.2 serves every Observation with meta.lastUpdated = now', () =>
    withVersion('7.0.2', async (s, token) => {
      const before = (await fhirGet(s, `/Observation/${uuid(1, 'bbbbbbbb')}`, token)).body.meta.lastUpdated;
      s.store.advanceClock(120);
      const clockBefore = Math.floor(s.store.now() / 1000) * 1000;
      const after = (await fhirGet(s, `/Observation/${uuid(1, 'bbbbbbbb')}`, await getAccessToken(s, 'system/Observation.read'))).body.meta
        .lastUpdated;
      expect(Date.parse(after) - Date.parse(before)).toBeGreaterThanOrEqual(120_000);
      expect(Date.parse(after)).toBeGreaterThanOrEqual(clockBefore);
      expect(Date.parse(after)).toBeLessThanOrEqual(s.store.now());
    }));

  // FhirObservationService fans out to sub-services, each applying the LIMIT of _count and none
  // reading _offset or _sort (audit §2, 7.0.3 and master).
  test.each(['7.0.3', '7.0.4', 'master'] as const)(
    '%s Observation sub-services apply _count each and ignore _offset and _sort',
    (version) =>
      withVersion(version, async (s, token) => {
        const first = entryIds((await fhirGet(s, '/Observation?_count=2', token)).body);
        const again = entryIds((await fhirGet(s, '/Observation?_count=2&_offset=2&_sort=-_lastUpdated', token)).body);
        expect(first).toEqual([uuid(1, 'bbbbbbbb'), uuid(2, 'bbbbbbbb')]);
        expect(again).toEqual(first);
      }),
  );
});

describe('registration and scopes per release', () => {
  async function register(s: OpenEmrStandIn, extra: Record<string, unknown>) {
    const keys = await generateKeyPair('RS384', { extractable: true });
    const res = await fetch(`${s.baseUrl}/oauth2/default/registration`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        application_type: 'private',
        client_name: 'sync connector',
        jwks: { keys: [{ ...(await exportJWK(keys.publicKey)), alg: 'RS384' }] },
        scope: 'system/Patient.read system/Observation.read',
        redirect_uris: ['https://localhost/unused'],
        ...extra,
      }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, string> };
  }

  // 7.0.3 AuthorizationController.php:245 enumerates client_secret_basic and client_secret_post only
  // (:313 "Unsupported $key value"); private_key_jwt came with 7.0.4 (:276).
  test.each([
    ['7.0.2', 400],
    ['7.0.3', 400],
    ['7.0.4', 200],
    ['master', 200],
  ] as const)('%s registration with token_endpoint_auth_method private_key_jwt answers %i', (version, status) =>
    withVersion(version, async (s) => {
      const res = await register(s, { token_endpoint_auth_method: 'private_key_jwt' });
      expect(res.status).toBe(status);
      if (status === 400)
        expect(res.body).toMatchObject({
          error: 'invalid_client_metadata',
          error_description: 'Unsupported token_endpoint_auth_method value : private_key_jwt',
        });
      // Without the field (or with client_secret_post) every release registers the client.
      expect((await register(s, {})).status).toBe(200);
      expect((await register(s, { token_endpoint_auth_method: 'client_secret_post' })).status).toBe(200);
    }),
  );

  // SMART v2 scopes exist from 7.0.4 (ServerScopeListEntity.php:171); before, registration
  // (AuthorizationController.php:300,407) and the token endpoint (validateScopes) answer invalid_scope.
  test.each([
    ['7.0.2', 400],
    ['7.0.3', 400],
    ['7.0.4', 200],
    ['master', 200],
  ] as const)('%s: system/Patient.rs at registration and token answers %i', (version, status) =>
    withVersion(version, async (s) => {
      const reg = await register(s, { scope: 'system/Patient.rs' });
      expect([reg.status, reg.body.error]).toEqual(status === 400 ? [400, 'invalid_scope'] : [200, undefined]);
      const token = await postToken(s, assertionForm(await signAssertion(s), 'system/Patient.rs'));
      expect([token.status, token.body.error]).toEqual(status === 400 ? [400, 'invalid_scope'] : [200, undefined]);
      const smart = await fhirGet(s, '/.well-known/smart-configuration');
      expect(smart.body.capabilities.includes('permission-v2')).toBe(status === 200);
    }),
  );
});

describe('site and API switch', () => {
  // SiteSetupListener.php:110 HttpException(400) rendered by ExceptionHandlerListener.
  test('an unknown site answers 400 "api site error" on the FHIR API and the token endpoint', () =>
    withVersion('master', async (s) => {
      for (const url of [`${s.baseUrl}/apis/clinic2/fhir/metadata`, `${s.baseUrl}/oauth2/clinic2/token`]) {
        const res = await fetch(url, { method: url.endsWith('token') ? 'POST' : 'GET' });
        expect(res.status).toBe(400);
        expect(((await res.json()) as { message: string }).message).toMatch(/^OpenEMR Error: api site error/);
      }
    }));

  // OAuth2AuthorizationListener.php:108 NotFoundHttpException("OpenEMR Error: API is disabled").
  test('with the APIs switched off every /apis request answers 404 "API is disabled"', () =>
    withVersion('master', async (s, token) => {
      s.setApiEnabled(false);
      const res = await fhirGet(s, '/Patient', token);
      expect(res.status).toBe(404);
      expect(res.body).toEqual({ error: 'An error occurred', message: 'OpenEMR Error: API is disabled', code: 0 });
      s.setApiEnabled(true);
      expect((await fhirGet(s, '/Patient', token)).status).toBe(200);
    }));
});
