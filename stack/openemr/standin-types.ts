/**
 * The one list of the types the OpenEMR stand-in serves. Every per-type list of the stand-in (the
 * supported and patient-scoped types, the routes, the load order, the scopes it knows and grants,
 * the search dispatch and its parameters, the CapabilityStatement) is derived from it, so a new
 * type is one entry here plus its behaviour in its family's module (services/medical.ts,
 * report-types.ts, directory-search.ts).
 *
 * Each entry says what OpenEMR's code does for the type (royharden/openemr):
 * - `searchParams`: the keys of its service's loadSearchParameters() (src/Services/FHIR/<service>);
 *   any other parameter empties the answer;
 * - `search`: which stand-in search serves it: `patient` and `observation` (fhir-search.ts, with
 *   paging and sub-services), `clinical` (searchClinical: one patient-scoped service),
 *   `directory` (directory-search.ts: rows of no patient);
 * - `family`: whose module holds the rest of its behaviour (row dates, shapes, sub-services);
 * - `routeLine`: the line of its `GET /fhir/<Type>` route in apis/routes/_rest_routes_fhir_r4_us_core_3_1_0.inc.php.
 *   OpenEMR's bulk export walks the types in that route order (FhirOperationExportRestController.php),
 *   so Observation comes before Patient: `TYPES_IN_ROUTE_ORDER` gives it for the export.
 * The list is in reference order: what is pointed at comes first, so the NDJSON loader resolves every
 * `urn:uuid:` reference to a row it already holds.
 */

export type SearchService = 'patient' | 'observation' | 'clinical' | 'directory';
export type TypeFamily = 'patient' | 'observation' | 'encounter' | 'condition' | 'medical' | 'report' | 'directory';

export interface StandInTypeSpec {
  readonly type: string;
  readonly family: TypeFamily;
  readonly search: SearchService;
  /** OpenEMR's service (src/Services/FHIR/…). */
  readonly service: string;
  readonly searchParams: readonly string[];
  readonly routeLine: number;
}

export const STANDIN_TYPES = [
  // FhirOrganizationService.php; `_lastUpdated` on facility.last_updated (directory-search.ts).
  {
    type: 'Organization',
    family: 'directory',
    search: 'directory',
    service: 'FhirOrganizationService.php',
    searchParams: [
      '_id',
      'email',
      'phone',
      'telecom',
      'address',
      'address-city',
      'address-postalcode',
      'address-state',
      'name',
      '_lastUpdated',
    ],
    routeLine: 503,
  },
  // FhirPractitionerService.php; users.last_updated.
  {
    type: 'Practitioner',
    family: 'directory',
    search: 'directory',
    service: 'FhirPractitionerService.php',
    searchParams: [
      '_id',
      'active',
      'email',
      'phone',
      'telecom',
      'address',
      'address-city',
      'address-postalcode',
      'address-state',
      'family',
      'given',
      'name',
      '_lastUpdated',
    ],
    routeLine: 650,
  },
  // FhirLocationService.php over LocationService.php's UNION (facility, patient_data, users).
  {
    type: 'Location',
    family: 'directory',
    search: 'directory',
    service: 'FhirLocationService.php',
    searchParams: ['_id', 'address', 'name', 'address-city', 'address-state', 'address-postalcode', '_lastUpdated'],
    routeLine: 403,
  },
  // FhirPatientService.php; the paging parameters are read by the search, not listed by the service.
  {
    type: 'Patient',
    family: 'patient',
    search: 'patient',
    service: 'FhirPatientService.php',
    searchParams: [
      '_id',
      'identifier',
      'name',
      'birthdate',
      'gender',
      'address',
      'address-city',
      'address-postalcode',
      'address-state',
      'email',
      'family',
      'given',
      'phone',
      'telecom',
      '_lastUpdated',
      'generalPractitioner',
    ],
    routeLine: 578,
  },
  // FhirEncounterService.php: `_lastUpdated` on form_encounter.last_update (openemr#7746, 7.0.2.2).
  {
    type: 'Encounter',
    family: 'encounter',
    search: 'clinical',
    service: 'FhirEncounterService.php',
    searchParams: ['_id', 'patient', 'date', '_lastUpdated'],
    routeLine: 297,
  },
  // FhirConditionService.php: `_lastUpdated` on lists.last_updated_time (openemr#7746).
  {
    type: 'Condition',
    family: 'condition',
    search: 'clinical',
    service: 'FhirConditionService.php',
    searchParams: ['patient', '_id', '_lastUpdated'],
    routeLine: 167,
  },
  // FhirObservationService.php over its sub-services (fhir-search.ts runObservationSearch).
  {
    type: 'Observation',
    family: 'observation',
    search: 'observation',
    service: 'FhirObservationService.php',
    searchParams: ['patient', 'code', 'category', 'date', '_id', '_lastUpdated'],
    routeLine: 493,
  },
  // services/medical.ts holds what each of these services stores and serves.
  {
    type: 'Immunization',
    family: 'medical',
    search: 'clinical',
    service: 'FhirImmunizationService.php',
    searchParams: ['patient', '_id', '_lastUpdated'],
    routeLine: 380,
  },
  {
    type: 'Procedure',
    family: 'medical',
    search: 'clinical',
    service: 'FhirProcedureService.php',
    searchParams: ['patient', 'date', '_id', '_lastUpdated'],
    routeLine: 703,
  },
  {
    type: 'MedicationRequest',
    family: 'medical',
    search: 'clinical',
    service: 'FhirMedicationRequestService.php',
    searchParams: ['patient', 'intent', 'status', '_id', '_lastUpdated'],
    routeLine: 470,
  },
  {
    type: 'AllergyIntolerance',
    family: 'medical',
    search: 'clinical',
    service: 'FhirAllergyIntoleranceService.php',
    searchParams: ['patient', '_id', '_lastUpdated'],
    routeLine: 73,
  },
  // report-types.ts: the parent services' lists (each sub-service lists the same names).
  {
    type: 'DiagnosticReport',
    family: 'report',
    search: 'clinical',
    service: 'FhirDiagnosticReportService.php',
    searchParams: ['patient', 'code', 'category', 'date', '_id', '_lastUpdated'],
    routeLine: 221,
  },
  {
    type: 'DocumentReference',
    family: 'report',
    search: 'clinical',
    service: 'FhirDocumentReferenceService.php',
    searchParams: ['patient', 'type', 'category', 'date', '_id', '_lastUpdated'],
    routeLine: 247,
  },
] as const satisfies readonly StandInTypeSpec[];

type Entry = (typeof STANDIN_TYPES)[number];
export type SupportedType = Entry['type'];
type TypeOf<F extends TypeFamily> = Extract<Entry, { family: F }>['type'];
/** Types that belong to no patient, served whole (directory-search.ts). */
export type DirectoryType = TypeOf<'directory'>;
export type MedicalType = TypeOf<'medical'>;
export type ReportType = TypeOf<'report'>;
/** The types searchClinical serves: one patient-scoped service each. */
export type ClinicalType = Extract<Entry, { search: 'clinical' }>['type'];

const typesWhere = <T extends SupportedType>(keep: (e: Entry) => boolean): readonly T[] =>
  STANDIN_TYPES.filter(keep).map((e) => e.type as T);

/** Every served type, in reference (load) order. */
export const SUPPORTED_TYPES: readonly SupportedType[] = typesWhere(() => true);
export const DIRECTORY_TYPES: readonly DirectoryType[] = typesWhere((e) => e.family === 'directory');
export const MEDICAL_TYPES: readonly MedicalType[] = typesWhere((e) => e.family === 'medical');
export const REPORT_TYPES: readonly ReportType[] = typesWhere((e) => e.family === 'report');
/** Types whose rows belong to one patient (their subject), searched with `patient=`. */
export const PATIENT_SCOPED_TYPES: readonly SupportedType[] = typesWhere((e) => e.search === 'observation' || e.search === 'clinical');
/** The order OpenEMR's export walks the types: its route file's (Observation before Patient). */
export const TYPES_IN_ROUTE_ORDER: readonly SupportedType[] = [...STANDIN_TYPES]
  .sort((a, b) => a.routeLine - b.routeLine)
  .map((e) => e.type);

const SPECS = new Map<string, Entry>(STANDIN_TYPES.map((e) => [e.type, e]));

export function specOf(type: SupportedType): Entry {
  return SPECS.get(type) as Entry;
}
export function isSupportedType(type: string): type is SupportedType {
  return SPECS.has(type);
}
export function isDirectoryType(type: string): type is DirectoryType {
  return SPECS.get(type)?.family === 'directory';
}
export function isMedicalType(type: string): type is MedicalType {
  return SPECS.get(type)?.family === 'medical';
}
export function isReportType(type: string): type is ReportType {
  return SPECS.get(type)?.family === 'report';
}

/** Each type's loadSearchParameters() keys: the one table searches check names against. */
export const SEARCH_PARAMS = Object.fromEntries(STANDIN_TYPES.map((e) => [e.type, e.searchParams])) as {
  readonly [T in SupportedType]: Extract<Entry, { type: T }>['searchParams'];
};

/** A type's SMART scopes: v1 `.read`, and v2 `.rs` (read + search; known from 7.0.4, ServerScopeListEntity.php:171). */
export function typeScopes(type: SupportedType): string[] {
  return [`system/${type}.read`, `system/${type}.rs`];
}
/** Every type's scopes, in list order. */
export const TYPE_SCOPES: readonly string[] = SUPPORTED_TYPES.flatMap(typeScopes);
