/**
 * Builds data/openemr-directory/: the Practitioners, Organizations and Locations an OpenEMR holding
 * the synthea-dev data would serve, shaped as its PHP builds them (royharden/openemr):
 * - Practitioner: FhirPractitionerService.php parseOpenEMRRecord (users row: title, fname, lname,
 *   npi, phonew1; narrative "fname lname"; address period from users.last_updated, none without a street);
 * - Organization: Organization/FhirOrganizationFacilityService.php (facility row: NPI, name,
 *   address, phone, type `prov`; the address period is invented at serve time, see the stand-in);
 * - Location: FhirLocationService.php over LocationService.php's UNION: a facility row (NPI
 *   identifier, CMS place-of-service type, whose system OpenEMR spells with a leading space), a
 *   "Home Address" row per Patient (patient_data address) and per user; managingOrganization is the
 *   primary business entity.
 * One practitioner and one facility per distinct (Practitioner, Organization, Location) reference
 * of the Synthea Encounters; links.json says which served resource each Synthea conditional
 * reference names (what an import stores in form_encounter.provider_id and facility_id).
 *
 *   npm run build && node dist/scripts/openemr-directory.js   (rewrites the folder; deterministic)
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const NPI = 'http://hl7.org/fhir/sid/us-npi';
const ORG_TYPE = 'http://terminology.hl7.org/CodeSystem/organization-type';
/** FhirCodeSystemConstants::CMS_PLACE_OF_SERVICE, leading space included. */
export const CMS_PLACE_OF_SERVICE = ' https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set';
const OFFSET = '-05:00';

/** A UUID (version nibble 5) from a name: the same input always gives the same ids. */
export function nameUuid(name: string): string {
  const h = createHash('sha1').update(`openemr-directory:${name}`).digest('hex');
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const narrative = (text: string) => ({ status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml"> <p>${text}</p></div>` });
const meta = (lastUpdated: string) => ({ versionId: '1', lastUpdated });

export interface OpenEmrDirectory {
  Practitioner: Json[];
  Organization: Json[];
  Location: Json[];
  /** Synthea conditional reference -> served `Type/uuid`. */
  links: Record<string, string>;
}

export function buildOpenEmrDirectory(encounters: readonly Json[], patients: readonly Json[]): OpenEmrDirectory {
  const triples = new Map<string, { practitioner: Json; organization: Json; location: Json }>();
  for (const e of encounters) {
    const practitioner = e.participant?.[0]?.individual;
    const organization = e.serviceProvider;
    const location = e.location?.[0]?.location;
    if (!practitioner?.reference || !organization?.reference || !location?.reference) continue;
    if (!triples.has(practitioner.reference)) triples.set(practitioner.reference, { practitioner, organization, location });
  }
  const out: OpenEmrDirectory = { Practitioner: [], Organization: [], Location: [], links: {} };
  const facilities = new Map<string, { organizationId: string; locationId: string }>();
  for (const { organization, location } of triples.values()) {
    if (facilities.has(organization.reference)) continue;
    const organizationId = nameUuid(`facility:${organization.reference}`);
    const locationId = nameUuid(`facility-location:${location.reference}`);
    facilities.set(organization.reference, { organizationId, locationId });
    out.links[organization.reference] = `Organization/${organizationId}`;
    out.links[location.reference] = `Location/${locationId}`;
  }
  // The first facility is the primary business entity (facility.primary_business_entity = 1).
  const primary = [...facilities.values()][0]?.organizationId;
  const managing = primary ? { reference: `Organization/${primary}`, type: 'Organization' } : undefined;
  let n = 0;
  for (const { organization } of triples.values()) {
    const ids = facilities.get(organization.reference)!;
    if (out.Organization.some((o) => o.id === ids.organizationId)) continue;
    const i = n++;
    const name = String(organization.display ?? `Facility ${i + 1}`).trim();
    const npi = String(1_700_000_000 + i * 7919);
    const lastUpdated = `2024-11-04T08:${String(i % 60).padStart(2, '0')}:00${OFFSET}`;
    const address = { line: [`${100 + i} Main Street`], city: 'Boston', state: 'MA', postalCode: `02${String(100 + i).padStart(3, '0')}` };
    const phone = `(617) 555-${String(1000 + i).slice(-4)}`;
    out.Organization.push({
      resourceType: 'Organization',
      id: ids.organizationId,
      meta: meta(lastUpdated),
      text: narrative(name),
      identifier: [{ system: NPI, value: npi }],
      active: true,
      type: [{ coding: [{ system: ORG_TYPE, code: 'prov', display: 'Healthcare Provider' }] }],
      name,
      telecom: [{ system: 'phone', value: phone, use: 'work' }],
      address: [address],
    });
    const hospital = !/^PCP/.test(name);
    out.Location.push({
      resourceType: 'Location',
      id: ids.locationId,
      meta: meta(lastUpdated),
      identifier: [{ system: NPI, value: npi }],
      status: 'active',
      name,
      type: [
        {
          coding: [
            hospital
              ? { system: CMS_PLACE_OF_SERVICE, code: '22', display: 'Outpatient Hospital' }
              : { system: CMS_PLACE_OF_SERVICE, code: '11', display: 'Office' },
          ],
        },
      ],
      telecom: [{ system: 'phone', value: phone }],
      address: { type: 'physical', ...address },
      ...(managing ? { managingOrganization: managing } : {}),
    });
  }
  n = 0;
  for (const { practitioner } of triples.values()) {
    const i = n++;
    const npi = /us-npi\|(\d+)$/.exec(practitioner.reference)?.[1];
    const [title, fname, ...rest] = String(practitioner.display ?? '').split(' ');
    const lname = rest.join(' ');
    const id = nameUuid(`user:${practitioner.reference}`);
    const lastUpdated = `2024-11-05T09:${String(i % 60).padStart(2, '0')}:00${OFFSET}`;
    out.links[practitioner.reference] = `Practitioner/${id}`;
    out.Practitioner.push({
      resourceType: 'Practitioner',
      id,
      meta: meta(lastUpdated),
      text: narrative(`${fname} ${lname}`),
      identifier: npi ? [{ system: NPI, value: npi }] : undefined,
      active: true,
      name: [{ use: 'official', family: lname, given: [fname], prefix: [title] }],
      telecom: [{ system: 'phone', value: `(617) 555-${String(2000 + i).slice(-4)}`, use: 'work' }],
    });
    // The users row's Location: "Home Address", no street on file (createAddressFromRecord gives none).
    out.Location.push({
      resourceType: 'Location',
      id: nameUuid(`user-location:${practitioner.reference}`),
      meta: meta(lastUpdated),
      status: 'active',
      name: 'Home Address',
      ...(managing ? { managingOrganization: managing } : {}),
    });
  }
  for (const p of patients) {
    const a = p.address?.[0];
    if (!a) continue;
    out.Location.push({
      resourceType: 'Location',
      id: nameUuid(`patient-location:${p.id}`),
      // patient_data.date: the stand-in's load epoch for Patients.
      meta: meta(`2025-01-01T00:00:00${OFFSET}`),
      status: 'active',
      name: 'Home Address',
      address: {
        type: 'physical',
        ...(a.line ? { line: a.line } : {}),
        ...(a.city ? { city: a.city } : {}),
        ...(a.state ? { state: a.state } : {}),
        ...(a.postalCode ? { postalCode: a.postalCode } : {}),
        ...(a.country ? { country: a.country } : {}),
      },
      ...(managing ? { managingOrganization: managing } : {}),
    });
  }
  for (const list of [out.Practitioner, out.Organization, out.Location])
    for (const r of list) for (const k of Object.keys(r)) if (r[k] === undefined) delete r[k];
  return out;
}

function readNdjson(file: string): Json[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Json);
}

/** The directory built from a Synthea folder, as the files it is stored in. */
export function directoryFiles(syntheaDir: string): Record<string, string> {
  const dir = buildOpenEmrDirectory(
    readNdjson(path.join(syntheaDir, 'Encounter.ndjson')),
    readNdjson(path.join(syntheaDir, 'Patient.ndjson')),
  );
  const ndjson = (list: Json[]) => list.map((r) => JSON.stringify(r)).join('\n') + '\n';
  return {
    'Organization.ndjson': ndjson(dir.Organization),
    'Practitioner.ndjson': ndjson(dir.Practitioner),
    'Location.ndjson': ndjson(dir.Location),
    'links.json': JSON.stringify(dir.links, null, 2) + '\n',
  };
}

if (require.main === module) {
  const root = path.resolve(__dirname, '..', '..');
  const target = path.join(root, 'data', 'openemr-directory');
  fs.mkdirSync(target, { recursive: true });
  for (const [name, text] of Object.entries(directoryFiles(path.join(root, 'data', 'synthea-dev'))))
    fs.writeFileSync(path.join(target, name), text);
  console.log(`wrote ${target}`);
}
