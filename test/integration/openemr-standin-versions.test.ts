/**
 * OpenEMR stand-in as a version matrix (stack/openemr/versions.ts): what each release answers to
 * the same request. Each test cites the OpenEMR code it follows.
 */
import { FhirResource, OPENEMR_VERSIONS, OpenEmrStandIn, startOpenEmrStandIn } from '../../stack/openemr';
import { entryIds, fhirGet, getAccessToken } from '../helpers/openemr-standin-client';

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

async function withVersion(version: (typeof OPENEMR_VERSIONS)[number], fn: (s: OpenEmrStandIn, token: string) => Promise<void>): Promise<void> {
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
    }));

  // 7.0.2 ResourceServiceSearchTrait.php:46-57: no `continue` after a special column, so _count,
  // _offset and _sort reach createSearchParameterForField and throw; the controllers answer an empty
  // 200 bundle. Fixed in 7.0.3 by openemr#8129.
  test('7.0.2 answers any search carrying _count, _offset or _sort with a 200 empty bundle', () =>
    withVersion('7.0.2', async (s, token) => {
      for (const path of ['/Patient?_count=2', '/Patient?_offset=0', '/Patient?_sort=_lastUpdated', '/Observation?_count=10', '/Observation?patient=' + uuid(1, 'aaaaaaaa') + '&_count=10']) {
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
    }));

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
    }));

  // 7.0.2 FhirObservationVitalsService.php:424 setLastUpdated(UtilsService::getDateFormattedAsUTC()).
  test('7.0.2 serves every Observation with meta.lastUpdated = now', () =>
    withVersion('7.0.2', async (s, token) => {
      const before = (await fhirGet(s, `/Observation/${uuid(1, 'bbbbbbbb')}`, token)).body.meta.lastUpdated;
      s.store.advanceClock(120);
      const after = (await fhirGet(s, `/Observation/${uuid(1, 'bbbbbbbb')}`, await getAccessToken(s, 'system/Observation.read'))).body.meta.lastUpdated;
      expect(Date.parse(after) - Date.parse(before)).toBeGreaterThanOrEqual(120_000);
      expect(Date.parse(after)).toBe(Math.floor(s.store.now() / 1000) * 1000);
    }));

  // FhirObservationService fans out to sub-services, each applying the LIMIT of _count and none
  // reading _offset or _sort (audit §2, 7.0.3 and master).
  test.each(['7.0.3', '7.0.4', 'master'] as const)('%s Observation sub-services apply _count each and ignore _offset and _sort', (version) =>
    withVersion(version, async (s, token) => {
      const first = entryIds((await fhirGet(s, '/Observation?_count=2', token)).body);
      const again = entryIds((await fhirGet(s, '/Observation?_count=2&_offset=2&_sort=-_lastUpdated', token)).body);
      expect(first).toEqual([uuid(1, 'bbbbbbbb'), uuid(2, 'bbbbbbbb')]);
      expect(again).toEqual(first);
    }));
});
