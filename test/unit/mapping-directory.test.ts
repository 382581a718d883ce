/**
 * Mapping of Practitioner, Organization and Location as OpenEMR serves them (data/openemr-directory,
 * shaped after royharden/openemr src/Services/FHIR/FhirPractitionerService.php,
 * Organization/FhirOrganizationFacilityService.php, FhirLocationService.php): what is kept (names,
 * NPI identifiers), what OpenEMR invents and the mapper removes (the address period of
 * UtilsService::createAddressFromRecord), what de-identification drops, and references to
 * uncarried directory types.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Encounter, Location, Organization, Practitioner } from '@medplum/fhirtypes';
import { createResourceMapper, type MapOutcome } from '../../src/mapping';
import type { SyncedResource } from '../../src/fhir/types';
import { DEFAULT_OPTIONS, deidOptions } from '../fixtures/mapping/load';

const DIR = path.resolve(__dirname, '../..', 'data/openemr-directory');
const all = <T>(type: string): T[] =>
  fs
    .readFileSync(path.join(DIR, `${type}.ndjson`), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T);
function ok(outcome: MapOutcome): SyncedResource {
  if (!outcome.ok) throw new Error(`expected ok, got: ${outcome.reason}`);
  return outcome.resource;
}
const CARRIED = ['Patient', 'Practitioner', 'Organization', 'Location', 'Encounter'];
const NPI = 'http://hl7.org/fhir/sid/us-npi';
/** What OpenEMR adds when it serves the row (createAddressFromRecord without period_start). */
const invented = (start: string) => ({ period: { start } });

const practitioner = all<Practitioner>('Practitioner')[0]!;
const organization = all<Organization>('Organization')[0]!;
const facilityLocation = all<Location>('Location').find((l) => l.identifier)!;
const homeLocation = all<Location>('Location').find((l) => l.name === 'Home Address' && l.address)!;

test('a Practitioner keeps its name, NPI and work phone; its narrative is rebuilt safely', () => {
  const out = ok(createResourceMapper({ ...DEFAULT_OPTIONS, carriedTypes: CARRIED }).map(practitioner)) as Practitioner;
  expect(out.identifier).toEqual([{ system: NPI, value: practitioner.identifier![0]!.value }]);
  expect(out.name).toEqual(practitioner.name);
  expect(out.telecom).toEqual(practitioner.telecom);
  expect(out.id).toBe(practitioner.id);
});

test('the address period OpenEMR invents on every read of an Organization or Location is removed, so two reads map byte-identically', () => {
  const mapper = createResourceMapper({ ...DEFAULT_OPTIONS, carriedTypes: CARRIED });
  const read = (start: string) => ({ ...organization, address: organization.address!.map((a) => ({ ...a, ...invented(start) })) });
  const first = ok(mapper.map(read('2025-12-02T09:00:00.123-05:00')));
  const second = ok(mapper.map(read('2025-12-02T09:00:01.456-05:00')));
  expect(JSON.stringify(first)).toBe(JSON.stringify(second));
  expect((first as Organization).address).toEqual(organization.address);
  const location = { ...facilityLocation, address: { ...facilityLocation.address, ...invented('2025-12-02T09:00:00.999-05:00') } };
  expect((ok(mapper.map(location)) as Location).address).toEqual(facilityLocation.address);
  // A Practitioner's address period is users.last_updated, a real value: kept.
  const withAddress = { ...practitioner, address: [{ city: 'Boston', period: { start: '2024-11-05T09:00:00.000-05:00' } }] };
  expect((ok(mapper.map(withAddress)) as Practitioner).address).toEqual(withAddress.address);
});

test("a Location's place-of-service system loses the leading space OpenEMR's constant carries, and the Location validates", () => {
  expect(facilityLocation.type![0]!.coding![0]!.system).toMatch(/^ https:/);
  const out = ok(createResourceMapper({ ...DEFAULT_OPTIONS, carriedTypes: CARRIED }).map(facilityLocation)) as Location;
  expect(out.type![0]!.coding![0]!.system).toBe('https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set');
  expect(out.managingOrganization).toEqual(facilityLocation.managingOrganization);
});

// The generic de-identification (deid-resource.ts) removes HumanName, Identifier and ContactPoint
// wherever they stand: a research feed carries no provider's name or NPI either (README, De-identification).
test('de-identification drops a home Location its street, a Practitioner its name, NPI and telecom, an Organization its identifiers', () => {
  const mapper = createResourceMapper(deidOptions({ carriedTypes: CARRIED }));
  const home = ok(mapper.map(homeLocation)) as Location;
  expect(home.address).toBeUndefined();
  expect(JSON.stringify(home)).not.toContain(homeLocation.address!.city!);
  const p = ok(mapper.map(practitioner)) as Practitioner;
  expect(p.telecom).toBeUndefined();
  expect(p.text).toBeUndefined();
  expect(p.name).toBeUndefined();
  expect(p.identifier).toBeUndefined();
  const org = ok(mapper.map(organization)) as Organization;
  expect(org.identifier).toBeUndefined();
  expect(organization.identifier!.length).toBeGreaterThan(0);
});

test("with MAPPING_UNCARRIED_REFERENCES=drop, an Encounter's directory references go when the directory is not carried, and its location entry with them", () => {
  const encounter: Encounter = {
    resourceType: 'Encounter',
    id: '0b0a0c0d-0000-4000-8000-000000000001',
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    subject: { reference: 'Patient/0b0a0c0d-0000-4000-8000-000000000002' },
    participant: [{ type: [{ text: 'Primary Performer' }], individual: { reference: `Practitioner/${practitioner.id}` } }],
    location: [{ location: { reference: `Location/${facilityLocation.id}` } }],
    serviceProvider: { reference: `Organization/${organization.id}` },
  };
  const dropped = ok(
    createResourceMapper({ ...DEFAULT_OPTIONS, uncarriedReferences: 'drop', carriedTypes: ['Patient', 'Encounter'] }).map(encounter),
  ) as Encounter;
  expect(dropped.participant).toEqual([{ type: [{ text: 'Primary Performer' }] }]);
  expect(dropped.location).toBeUndefined();
  expect(dropped.serviceProvider).toBeUndefined();
  const kept = ok(
    createResourceMapper({ ...DEFAULT_OPTIONS, uncarriedReferences: 'drop', carriedTypes: CARRIED }).map(encounter),
  ) as Encounter;
  expect(kept.participant![0]!.individual).toEqual({ reference: `Practitioner/${practitioner.id}` });
  expect(kept.location).toEqual(encounter.location);
  expect(kept.serviceProvider).toEqual(encounter.serviceProvider);
});
