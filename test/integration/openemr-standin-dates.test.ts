/**
 * OpenEMR stand-in, what row dates really are: `_lastUpdated` columns that hold clinical dates
 * (back-dated or NULL), the 7.0.3 upgrade's one-second crowd, and times labelled with today's UTC
 * offset. Each test cites the OpenEMR code it follows; each gets its own empty stand-in.
 */
import { FhirResource, OpenEmrStandIn, startOpenEmrStandIn } from '../../stack/openemr';
import { control, entryIds, fhirGet, getAccessToken } from '../helpers/openemr-standin-client';

type Options = Parameters<typeof startOpenEmrStandIn>[0];
const uuid = (n: number, prefix: string) => `${prefix}-0000-4000-8000-${String(n).padStart(12, '0')}`;
const patient = (n: number): FhirResource => ({ resourceType: 'Patient', id: uuid(n, 'aaaaaaaa'), name: [{ family: `Family${n}` }] });
const observation = (n: number, category = 'laboratory'): FhirResource => ({
  resourceType: 'Observation',
  id: uuid(n, 'bbbbbbbb'),
  status: 'final',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: category }] }],
  code: { coding: [{ system: 'http://loinc.org', code: '2345-7' }] },
  subject: { reference: `Patient/${uuid(1, 'aaaaaaaa')}` },
  valueQuantity: { value: 100 + n, unit: 'mg/dL', system: 'http://unitsofmeasure.org', code: 'mg/dL' },
});
const iso = (epochSeconds: number) => new Date(epochSeconds * 1000).toISOString().replace('.000Z', 'Z');

async function withStandIn(fn: (s: OpenEmrStandIn) => Promise<void>, options: Options = {}): Promise<void> {
  const s = await startOpenEmrStandIn({ dataDir: null, ...options });
  try {
    s.store.put(patient(1));
    await fn(s);
  } finally {
    await s.close();
  }
}

const get = async (s: OpenEmrStandIn, path: string) => fhirGet(s, path, await getAccessToken(s));

// FhirObservationLaboratoryService: _lastUpdated is procedure_report.report_date, a clinical date.
test('a back-dated lab row (PUT ?lastUpdated=) falls before the current _lastUpdated window', () =>
  withStandIn(async (s) => {
    const now = Math.floor(s.store.now() / 1000);
    const windowStart = iso(now - 600);
    const lastWeek = iso(now - 7 * 86400);
    expect(
      (await control(s, 'PUT', `/Observation/${uuid(1, 'bbbbbbbb')}?lastUpdated=${encodeURIComponent(lastWeek)}`, observation(1))).status,
    ).toBe(201);
    expect((await control(s, 'PUT', `/Observation/${uuid(2, 'bbbbbbbb')}`, observation(2))).status).toBe(201);
    const recent = await get(s, `/Observation?_lastUpdated=ge${encodeURIComponent(windowStart)}`);
    expect(entryIds(recent.body)).toEqual([uuid(2, 'bbbbbbbb')]);
    const lab = await get(s, `/Observation/${uuid(1, 'bbbbbbbb')}`);
    expect(Date.parse(lab.body.meta.lastUpdated)).toBe((now - 7 * 86400) * 1000);
  }));

// procedure_report.report_date may be NULL (sql/database.sql): SQL never matches NULL, the export
// filters every row by _lastUpdated >= _since (FhirBulkExportDomainResourceTrait.php:71-73), and
// meta.lastUpdated falls back to now (FhirObservationLaboratoryService.php:221).
test('a NULL-dated lab row never matches _lastUpdated, is served with meta.lastUpdated now and found without it', () =>
  withStandIn(async (s) => {
    expect((await control(s, 'PUT', `/Observation/${uuid(1, 'bbbbbbbb')}?lastUpdated=null`, observation(1))).status).toBe(201);
    expect((await get(s, '/Observation?_lastUpdated=ge1970-01-01')).body.total).toBe(0);
    expect((await get(s, '/Observation?_lastUpdated=lt2100-01-01')).body.total).toBe(0);
    expect(entryIds((await get(s, `/Observation?patient=${uuid(1, 'aaaaaaaa')}`)).body)).toEqual([uuid(1, 'bbbbbbbb')]);
    s.store.advanceClock(3600);
    const before = Math.floor(s.store.now() / 1000) * 1000;
    const read = await get(s, `/Observation/${uuid(1, 'bbbbbbbb')}`);
    expect(Date.parse(read.body.meta.lastUpdated)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(read.body.meta.lastUpdated)).toBeLessThanOrEqual(s.store.now());
  }));

// sql/7_0_2-to-7_0_3_upgrade.sql:184,204 add last_updated DEFAULT CURRENT_TIMESTAMP to form_vitals
// and patient_data without a backfill: every legacy row shares the upgrade's second.
test('the 7.0.3 upgrade artefact puts every Patient and vitals Observation into one lastUpdated second', () =>
  withStandIn(async (s) => {
    for (let n = 2; n <= 5; n++) s.store.put(patient(n));
    for (let n = 1; n <= 6; n++) s.store.put(observation(n, n <= 4 ? 'vital-signs' : 'laboratory'));
    s.store.advanceClock(86400);
    const second = iso(Math.floor(s.store.now() / 1000));
    const stamped = await control(s, 'POST', '/upgrade-artefact', { at: second });
    expect(stamped.body).toEqual({ Patient: 5, Observation: 4 });
    expect((await get(s, `/Patient?_lastUpdated=eq${second}`)).body.total).toBe(5);
    expect((await get(s, `/Observation?_lastUpdated=eq${second}`)).body.total).toBe(4);
    // No tie-break inside the crowded second: pages follow row order.
    const page = await get(s, `/Patient?_lastUpdated=ge${second}&_sort=_lastUpdated&_count=3`);
    expect(entryIds(page.body)).toEqual([1, 2, 3].map((n) => uuid(n, 'aaaaaaaa')));
  }));

// UtilsService::getLocalDateAsUTC (:404-415) and SearchFieldStatementResolver::adjustTimezoneToLocalTime
// (:332-335) both use date('P'): today's offset, whatever the row's season.
test("with a DST zone a row written in the other season is served and searched with today's offset", () =>
  withStandIn(
    async (s) => {
      const zone = new Intl.DateTimeFormat('en-US', { timeZone: 'America/New_York', timeZoneName: 'longOffset' });
      const offsetAt = (t: number) => {
        const label = zone.formatToParts(new Date(t * 1000)).find((p) => p.type === 'timeZoneName')!.value;
        return label === 'GMT' ? 0 : (label[3] === '-' ? -1 : 1) * (Number(label.slice(4, 6)) * 60 + Number(label.slice(7, 9)));
      };
      const now = Math.floor(s.store.now() / 1000);
      // A whole hour in the other season than today.
      let t = now - 86400;
      while (offsetAt(t) === offsetAt(now)) t -= 86400;
      t -= t % 3600;
      s.store.put({ ...observation(1), effectiveDateTime: iso(t), issued: iso(t) }, { lastUpdated: t });
      const shift = (offsetAt(t) - offsetAt(now)) * 60; // seconds the served time is late
      const read = (await get(s, `/Observation/${uuid(1, 'bbbbbbbb')}`)).body;
      const served = read.meta.lastUpdated as string;
      expect(Date.parse(served) / 1000).toBe(t + shift);
      // Clinical times are DATETIME columns too, emitted through the same getLocalDateAsUTC.
      expect(Date.parse(read.effectiveDateTime) / 1000).toBe(t + shift);
      expect(Date.parse(read.issued) / 1000).toBe(t + shift);
      expect((await get(s, `/Observation?_lastUpdated=eq${iso(t + shift)}`)).body.total).toBe(1);
      expect((await get(s, `/Observation?_lastUpdated=eq${iso(t)}`)).body.total).toBe(0);
      // Once the clock is in the row's season again, the same row is served at its true instant.
      while (offsetAt(Math.floor(s.store.now() / 1000)) !== offsetAt(t)) s.store.advanceClock(7 * 86400);
      const laterRead = (await get(s, `/Observation/${uuid(1, 'bbbbbbbb')}`)).body;
      expect(Date.parse(laterRead.meta.lastUpdated) / 1000).toBe(t);
      expect(Date.parse(laterRead.effectiveDateTime) / 1000).toBe(t);
    },
    { timeZone: 'America/New_York' },
  ));

// SearchConfigClauseBuilder.php:58 `LIMIT offset, count+1` over ORDER BY last_updated only: MySQL
// does not promise the order of ties across LIMIT windows (the unstableTies option models it).
test('with unstableTies, _offset pages inside one crowded second skip and repeat Patients', () =>
  withStandIn(
    async (s) => {
      for (let n = 2; n <= 10; n++) s.store.put(patient(n));
      const second = iso(Math.floor(s.store.now() / 1000));
      await control(s, 'POST', '/upgrade-artefact', { at: second });
      const pages: string[] = [];
      for (let offset = 0; offset < 10; offset += 3)
        pages.push(...entryIds((await get(s, `/Patient?_sort=_lastUpdated&_count=3&_offset=${offset}`)).body));
      expect(pages).toHaveLength(10);
      expect(new Set(pages).size).toBeLessThan(10);
      // The whole second without a limit still holds every Patient once.
      expect(new Set(entryIds((await get(s, `/Patient?_lastUpdated=eq${second}`)).body)).size).toBe(10);
    },
    { unstableTies: true },
  ));
