/**
 * The stand-in serves Practitioner, Organization and Location as OpenEMR's code does, pinned
 * against royharden/openemr: search parameters from loadSearchParameters/getSearchParams of
 * src/Services/FHIR/FhirPractitionerService.php, FhirOrganizationService.php and
 * FhirLocationService.php (any other parameter empties the answer), `_lastUpdated` on the rows'
 * last_updated columns, an unknown id 404 `[]`, the address period UtilsService::createAddressFromRecord
 * invents per read (now minus one year, milliseconds), and Encounters whose participant.individual,
 * serviceProvider and location.location point at served rows (FhirEncounterService.php).
 * Expectations come from the NDJSON source (data/openemr-directory), not from the stand-in.
 */
import path from 'node:path';
import { defaultDirectoryDir, type OpenEmrStandIn } from '../../stack/openemr';
import { readNdjson } from '../fixtures/mapping/load';
import { startTypeStandIns, type TypeStandIns } from '../helpers/carried-types';
import { entryIds } from '../helpers/openemr-standin-client';

type Json = Record<string, any>;
const read = (type: string) => readNdjson<Json>(path.join(defaultDirectoryDir(), `${type}.ndjson`));
const practitioners = read('Practitioner');
const organizations = read('Organization');
const locations = read('Location');

let standIns: TypeStandIns;
let openemr: OpenEmrStandIn;
/** The bare sample: the one stand-in of the suite started without the directory (directoryDir: null). */
let getBare: TypeStandIns['getBeside'];

beforeAll(async () => {
  standIns = await startTypeStandIns(['Encounter', 'Practitioner', 'Organization', 'Location'], { directoryDir: null });
  ({ openemr, getBeside: getBare } = standIns);
}, 60_000);
afterAll(() => standIns?.close());

const get = (p: string) => standIns.get(p);

test('each directory type is searched whole with no parameter, and read by id', async () => {
  expect(openemr.loadReport?.loaded).toMatchObject({
    Practitioner: practitioners.length,
    Organization: organizations.length,
    Location: locations.length,
  });
  for (const [type, source] of [
    ['Practitioner', practitioners],
    ['Organization', organizations],
    ['Location', locations],
  ] as const) {
    const all = await get(`/${type}`);
    expect(all.status).toBe(200);
    expect(entryIds(all.body).sort()).toEqual(source.map((r) => r.id).sort());
    const one = await get(`/${type}/${source[0]!.id}`);
    expect(one.status).toBe(200);
    expect(one.body.identifier ?? null).toEqual(source[0]!.identifier ?? null);
  }
  const missing = await get('/Practitioner/00000000-0000-4000-8000-000000000000');
  expect(missing.status).toBe(404);
  expect(missing.text).toBe('[]');
});

test('search parameters are the ones OpenEMR lists per type; another empties the answer', async () => {
  const p = practitioners[0]!;
  expect(entryIds((await get(`/Practitioner?family=${encodeURIComponent(p.name[0].family)}`)).body)).toEqual([p.id]);
  expect(entryIds((await get(`/Practitioner?_id=${p.id}`)).body)).toEqual([p.id]);
  expect(entryIds((await get('/Practitioner?active=true')).body)).toHaveLength(practitioners.length);
  // Location lists no `family`, Practitioner no `identifier`: unsupported, so nothing.
  expect(entryIds((await get(`/Location?family=${encodeURIComponent(p.name[0].family)}`)).body)).toEqual([]);
  expect(entryIds((await get(`/Practitioner?identifier=${p.identifier[0].value}`)).body)).toEqual([]);
  const o = organizations[0]!;
  expect(entryIds((await get(`/Organization?name=${encodeURIComponent(o.name)}`)).body)).toContain(o.id);
  // _count is not Practitioner's: read and ignored, every row comes back.
  expect(entryIds((await get('/Practitioner?_count=2')).body)).toHaveLength(practitioners.length);
});

test('_lastUpdated=ge finds a directory row changed after the load, and only it', async () => {
  const o = organizations[1]!;
  openemr.store.advanceClock(60);
  openemr.store.put({ ...o, name: `${o.name} (renamed)` } as never);
  const since = new Date(openemr.store.now() - 30_000).toISOString().replace(/\.\d+Z$/, 'Z');
  const answer = await get(`/Organization?_lastUpdated=ge${since}`);
  expect(entryIds(answer.body)).toEqual([o.id]);
  expect(entryIds((await get(`/Practitioner?_lastUpdated=ge${since}`)).body)).toEqual([]);
});

test('an Organization or Location address gets a new invented period on every read; a Practitioner has none', async () => {
  const id = locations.find((l) => l.address)!.id;
  const first = (await get(`/Location/${id}`)).body;
  await new Promise((r) => setTimeout(r, 5));
  const second = (await get(`/Location/${id}`)).body;
  expect(first.address.period.start).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$/);
  expect(second.address.period.start).not.toBe(first.address.period.start);
  const org = (await get(`/Organization/${organizations[0]!.id}`)).body;
  expect(org.address[0].period.start).toMatch(/\.\d{3}[+-]\d\d:\d\d$/);
  expect((await get(`/Practitioner/${practitioners[0]!.id}`)).body.address).toBeUndefined();
});

test('an Encounter points at served rows: participant.individual, serviceProvider, location.location; started without the directory it has none', async () => {
  const encounterId = openemr.store.ids('Encounter')[0]!;
  const e = (await get(`/Encounter/${encounterId}`)).body;
  const refs = [e.participant[0].individual.reference, e.serviceProvider.reference, e.location[0].location.reference];
  expect(refs.map((r: string) => r.split('/')[0])).toEqual(['Practitioner', 'Organization', 'Location']);
  for (const ref of refs) expect((await get(`/${ref}`)).status).toBe(200);
  expect(e.participant[0].type[0].coding[0].code).toBe('PPRF');
  const bare = (await getBare(`/Encounter/${encounterId}`)).body;
  expect(bare.serviceProvider).toBeUndefined();
  expect(bare.location).toBeUndefined();
  expect((await getBare('/Practitioner')).body.total).toBe(0);
});
