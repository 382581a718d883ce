/**
 * What the mapper does to the directory types (Practitioner, Organization, Location) beyond the
 * generic walk (references, empty elements, de-identification drops from resource-types.ts).
 *
 * OpenEMR's Organization (facility, insurance and procedure-provider sub-services) and Location
 * build their address with UtilsService::createAddressFromRecord without a `period_start`, and that
 * function then invents one: "now minus one year", to the millisecond (royharden/openemr
 * src/Services/FHIR/UtilsService.php createAddressFromRecord). The value changes on every read and
 * says nothing about the row, so carried as it comes every sync would write a new version of every
 * Organization and Location. It is removed (the whole period when it holds nothing else). A
 * Practitioner's address period starts at users.last_updated (FhirPractitionerService.php passes
 * it), a real value, and is kept.
 *
 * OpenEMR's Location.type codes a facility's place of service with the system
 * FhirCodeSystemConstants::CMS_PLACE_OF_SERVICE, which it spells with a leading space
 * (" https://www.cms.gov/…"): not a FHIR uri (its regex `\S*` allows no whitespace; AHDS's parser
 * lets it pass, a validating server need not) and never equal to the system a query names. The
 * space is trimmed; the system is otherwise kept as OpenEMR names it.
 */
type Json = Record<string, unknown>;

const INVENTED_ADDRESS_PERIOD = new Set(['Organization', 'Location']);

export function normaliseDirectoryResource(type: string, body: Json): void {
  if (type === 'Location') trimCodingSystems(body.type);
  if (!INVENTED_ADDRESS_PERIOD.has(type)) return;
  const addresses = body.address === undefined ? [] : Array.isArray(body.address) ? body.address : [body.address];
  for (const address of addresses as Json[]) {
    const period = address?.period as Json | undefined;
    if (!period || typeof period !== 'object') continue;
    delete period.start;
    if (Object.keys(period).length === 0) delete address.period;
  }
}

function trimCodingSystems(concepts: unknown): void {
  for (const concept of Array.isArray(concepts) ? concepts : concepts ? [concepts] : []) {
    const codings = (concept as Json | null)?.coding;
    if (!Array.isArray(codings)) continue;
    for (const coding of codings as Json[]) if (typeof coding?.system === 'string') coding.system = coding.system.trim();
  }
}
