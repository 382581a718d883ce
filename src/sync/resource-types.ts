/**
 * The resource types the connector can carry, as configuration: one row per type with its place in
 * the reference order, how OpenEMR serves it (from its PHP code) and how it is mapped. Orchestrators
 * (source.ts, incremental.ts, sync-service.ts) walk this table; adding a type is a row plus tests.
 * SYNC_RESOURCE_TYPES picks the rows a deployment carries.
 */
import { MEDICAL_RESOURCE_TYPES } from './resource-types-medical';

/** A carried reference: the element of this type that must resolve in the target before it is written. */
export interface CarriedReference {
  /** Element holding a Reference or a list of them (FHIR name; a dotted path for a nested one, e.g. context.encounter). */
  /**
   * The element holding a Reference (FHIR name), or a dotted path through nested elements
   * (`participant.individual`, `location.location`); arrays on the way are walked, so one path may
   * name several references of one resource.
   */
  element: string;
  /** The type it points at. */
  type: string;
}

export interface ResourceTypeSpec {
  type: string;
  /**
   * Place in the reference order: every resource of a lower rank is written (or dead-lettered)
   * before any of a higher one, within a run and across batches (each rank's sink is flushed first).
   */
  rank: number;
  /**
   * Carried when SYNC_RESOURCE_TYPES is not set (and so read-scoped by the default OPENEMR_SCOPES).
   * A type that is carried end to end on every release in the compatibility matrix sets it.
   */
  carriedByDefault: boolean;
  /** OpenEMR's FHIR service that serves it (royharden/openemr src/Services/FHIR/…). */
  openemrService: string;
  read: {
    /** Rows belong to one patient: read per Patient (`patient=<id>`) for long or open windows. */
    patientScoped: boolean;
    /** Search parameters OpenEMR lists for it (loadSearchParameters); any other empties the answer. */
    searchParams: readonly string[];
    /** The column `_lastUpdated` filters on (getLastModifiedSearchField). */
    lastUpdatedColumn: string;
    /** Releases whose search honours `_lastUpdated` (7.0.2 before .2 answers it with an empty bundle). */
    lastUpdatedFrom: string;
    /** OpenEMR's `$export` carries it (IFhirExportableResourceService). */
    exportedByOpenEmr: boolean;
    /**
     * The connector reads it from an export (else always by search): only where the export gives the
     * rows its search would. OpenEMR's export filters every type with `_lastUpdated=ge<_since>`, the
     * Unix epoch when there is none (FhirOperationExportRestController.php:176,
     * FhirBulkExportDomainResourceTrait.php:71-73), while a search for "everything" (first run of a
     * pre-1970 type, reconcile) sends no `_lastUpdated`: a column that may be NULL or hold a date
     * before 1970 loses those rows in an export, and such a type is searched when read whole.
     */
    connectorExports: boolean;
    /**
     * Where connectorExports is false: a window with a lower bound is still read from the export.
     * Its search would send `_lastUpdated=ge<since>` on the same column, and the export's `_since`
     * is at or below it, so a NULL or pre-1970 row is missed by both alike; only a read of
     * "everything" (a pre-1970 type's first run, reconcile) needs the search.
     */
    exportsWindows?: boolean;
    /** The SMART scope a search needs. */
    scope: string;
    /**
     * The column is a clinical DATETIME that holds dates before 1970 (a document dated 1962): a first
     * window from the Unix epoch (SYNC_INITIAL_SINCE's default) would never ask for those rows, so
     * it is read as "everything" instead.
     */
    preEpochDates?: boolean;
  };
  /** References that must resolve in the target: held back and dead-lettered otherwise. */
  references: readonly CarriedReference[];
  mapping: {
    /** Top-level CodeableConcept elements passed through the ConceptMaps (local codes in LOINC/SNOMED slots). */
    concepts: readonly string[];
    /** Elements removed in de-identification mode (narrative, identifiers, free text). */
    deidDrop: readonly string[];
  };
}

const DEID_CLINICAL_DROP = ['text', 'identifier', 'note', 'contained'] as const;

/**
 * The search parameters and `_lastUpdated` release of the directory types. Their `_lastUpdated`
 * columns (users.last_updated, facility/insurance_companies/procedure_providers.last_updated) were
 * added, ON UPDATE CURRENT_TIMESTAMP, by sql/7_0_2-to-7_0_3_upgrade.sql in the commit that fixed
 * openemr#7746 (#7754): real modification times in every release the connector reads (7.0.3+), so
 * incremental reads by `_lastUpdated=ge` are sound (legacy rows share the upgrade's second, as Patients do).
 */
const DIRECTORY_LAST_UPDATED_FROM = '7.0.3 (columns added by 7_0_2-to-7_0_3_upgrade.sql, openemr#7754)';

/** Every type the connector knows; orderedTypes puts them in reference order (rank, ties in this order). */
export const RESOURCE_TYPES: readonly ResourceTypeSpec[] = [
  {
    type: 'Patient',
    rank: 0,
    carriedByDefault: true,
    openemrService: 'FhirPatientService.php',
    read: {
      patientScoped: false,
      // FhirPatientService::loadSearchParameters; `_count`, `_offset` and `_sort` are paging, taken on every search.
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
      lastUpdatedColumn: 'patient_data.last_updated',
      lastUpdatedFrom: '7.0.3 (every release; 7.0.3 stamps all legacy rows in one second)',
      exportedByOpenEmr: true,
      connectorExports: true,
      scope: 'system/Patient.read',
    },
    references: [],
    mapping: { concepts: [], deidDrop: ['text', 'identifier', 'name', 'telecom', 'address', 'photo', 'contact', 'contained'] },
  },
  {
    type: 'Encounter',
    rank: 1,
    carriedByDefault: true,
    openemrService: 'FhirEncounterService.php',
    read: {
      patientScoped: true,
      searchParams: ['_id', 'patient', 'date', '_lastUpdated'],
      lastUpdatedColumn: 'form_encounter.last_update',
      lastUpdatedFrom: '7.0.2.2 (openemr#7746)',
      exportedByOpenEmr: true,
      // last_update is a TIMESTAMP NOT NULL ON UPDATE CURRENT_TIMESTAMP (sql/database.sql): never NULL, never before 1970.
      connectorExports: true,
      scope: 'system/Encounter.read',
    },
    // FhirEncounterService.php parseOpenEMRRecord: provider and referrer as participant.individual,
    // the facility as serviceProvider and its Location as location.location.
    references: [
      { element: 'subject', type: 'Patient' },
      { element: 'participant.individual', type: 'Practitioner' },
      { element: 'serviceProvider', type: 'Organization' },
      { element: 'location.location', type: 'Location' },
    ],
    mapping: { concepts: ['type', 'reasonCode'], deidDrop: DEID_CLINICAL_DROP },
  },
  {
    type: 'Condition',
    rank: 2,
    carriedByDefault: true,
    openemrService: 'FhirConditionService.php (encounter-diagnosis, problem-list-item, health-concern sub-services)',
    read: {
      patientScoped: true,
      searchParams: ['patient', '_id', '_lastUpdated'],
      lastUpdatedColumn: 'lists.last_updated_time',
      lastUpdatedFrom: '7.0.2.2 (openemr#7746)',
      exportedByOpenEmr: true,
      // Every sub-service filters on lists.modifydate (ConditionService.php: `modifydate as last_updated_time`),
      // a TIMESTAMP NOT NULL ON UPDATE CURRENT_TIMESTAMP: never NULL, never before 1970.
      connectorExports: true,
      scope: 'system/Condition.read',
    },
    references: [
      { element: 'subject', type: 'Patient' },
      { element: 'encounter', type: 'Encounter' },
    ],
    mapping: { concepts: ['code', 'category'], deidDrop: DEID_CLINICAL_DROP },
  },
  {
    type: 'Observation',
    rank: 2,
    carriedByDefault: true,
    openemrService: 'FhirObservationService.php (vitals, laboratory, social-history, … sub-services)',
    read: {
      patientScoped: true,
      searchParams: ['patient', 'code', 'category', 'date', '_id', '_lastUpdated'],
      lastUpdatedColumn: 'per sub-service (labs: report date; vitals: form date; social history: now)',
      lastUpdatedFrom: '7.0.2.2 (openemr#7746)',
      exportedByOpenEmr: true,
      connectorExports: true,
      scope: 'system/Observation.read',
    },
    references: [
      { element: 'subject', type: 'Patient' },
      { element: 'encounter', type: 'Encounter' },
    ],
    mapping: { concepts: ['code', 'valueCodeableConcept'], deidDrop: DEID_CLINICAL_DROP },
  },
  {
    // Two sub-services, each with its own _lastUpdated column: clinical notes (FhirDiagnosticReportClinicalNotesService.php,
    // form_clinical_notes.last_updated, a modification time; the note's text inline in presentedForm.data, base64
    // text/plain) and laboratory (FhirDiagnosticReportLaboratoryService.php, procedure_report.report_date: the
    // clinical report date, NULL-dated reports never match; result -> the lab Observations).
    type: 'DiagnosticReport',
    rank: 3,
    carriedByDefault: true,
    openemrService: 'FhirDiagnosticReportService.php (clinical-notes, laboratory sub-services)',
    read: {
      patientScoped: true,
      searchParams: ['patient', 'code', 'category', 'date', '_id', '_lastUpdated'],
      lastUpdatedColumn: 'per sub-service (clinical notes: form_clinical_notes.last_updated; labs: procedure_report.report_date)',
      lastUpdatedFrom: '7.0.2.2 (openemr#7746)',
      exportedByOpenEmr: true,
      // Searched when read whole (reconcile; a pre-1970 type's first run), else exported (exportsWindows): a lab
      // report's date_report is a clinical DATETIME, NULL until the report is filed and possibly before 1970
      // (sql/database.sql): such reports never leave an export.
      connectorExports: false,
      exportsWindows: true,
      scope: 'system/DiagnosticReport.read',
      preEpochDates: true,
    },
    // result -> Observation: ranked after Observation so the Observations it lists are written first.
    // performer / resultsInterpreter (Practitioner, Organization) follow MAPPING_UNCARRIED_REFERENCES.
    references: [
      { element: 'subject', type: 'Patient' },
      { element: 'encounter', type: 'Encounter' },
      { element: 'result', type: 'Observation' },
    ],
    mapping: { concepts: ['code', 'category'], deidDrop: [...DEID_CLINICAL_DROP, 'presentedForm', 'conclusion', 'conclusionCode'] },
  },
  {
    // Three sub-services, all filtering _lastUpdated on a `date` column and stamping meta.lastUpdated with
    // it: clinical notes (FhirClinicalNotesService.php, form_clinical_notes.date: the note's clinical date,
    // text inline in content.attachment.data), patient documents (FhirPatientDocumentReferenceService.php,
    // documents.date; content.attachment.url = OpenEMR's own /fhir/Binary/<uuid>), advance directives.
    type: 'DocumentReference',
    rank: 2,
    carriedByDefault: true,
    openemrService: 'FhirDocumentReferenceService.php (clinical-notes, patient-documents, advance-directive sub-services)',
    read: {
      patientScoped: true,
      searchParams: ['patient', 'type', 'category', 'date', '_id', '_lastUpdated'],
      lastUpdatedColumn:
        'per sub-service date column (clinical notes: form_clinical_notes.date, a clinical date; documents: documents.date)',
      lastUpdatedFrom: '7.0.2.2 (openemr#7746)',
      exportedByOpenEmr: true,
      // Searched when read whole (reconcile; a pre-1970 type's first run), else exported (exportsWindows):
      // form_clinical_notes.date and documents.date are clinical dates, nullable and often before 1970 (174 of the
      // 968 sample notes): the export, which starts at the epoch, never carries those, and no `_lastUpdated` search
      // finds a NULL one to complete it.
      connectorExports: false,
      exportsWindows: true,
      scope: 'system/DocumentReference.read',
      preEpochDates: true,
    },
    // author / custodian / authenticator (Practitioner, Organization) follow MAPPING_UNCARRIED_REFERENCES.
    references: [
      { element: 'subject', type: 'Patient' },
      { element: 'context.encounter', type: 'Encounter' },
    ],
    // content is required (1..*): de-identification empties its attachments (attachments.ts), it does not drop it.
    mapping: { concepts: ['type', 'category'], deidDrop: [...DEID_CLINICAL_DROP, 'description'] },
  },
  ...MEDICAL_RESOURCE_TYPES,
  // The directory: what Patients and Encounters point at.
  {
    type: 'Organization',
    rank: -2,
    carriedByDefault: true,
    openemrService: 'FhirOrganizationService.php (facility, insurance, procedure-provider sub-services)',
    read: {
      patientScoped: false,
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
      lastUpdatedColumn: 'per sub-service: facility.last_updated, insurance_companies.last_updated, procedure_providers.last_updated',
      lastUpdatedFrom: DIRECTORY_LAST_UPDATED_FROM,
      exportedByOpenEmr: true,
      // Each sub-service's last_updated is DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE (sql/database.sql).
      connectorExports: true,
      scope: 'system/Organization.read',
    },
    references: [],
    // Names, NPI/CLIA identifiers and work telecom of an organisation identify no patient.
    mapping: { concepts: [], deidDrop: ['text', 'contained'] },
  },
  {
    type: 'Practitioner',
    rank: -2,
    carriedByDefault: true,
    openemrService: 'FhirPractitionerService.php',
    read: {
      patientScoped: false,
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
      lastUpdatedColumn: 'users.last_updated',
      lastUpdatedFrom: DIRECTORY_LAST_UPDATED_FROM,
      exportedByOpenEmr: true,
      // users.last_updated is DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE (sql/database.sql).
      connectorExports: true,
      scope: 'system/Practitioner.read',
    },
    references: [],
    // Name and NPI stay (they say who treated); the users row's street and home/mobile phone are private.
    mapping: { concepts: [], deidDrop: ['text', 'telecom', 'address', 'photo', 'contained'] },
  },
  {
    type: 'Location',
    rank: -1,
    carriedByDefault: true,
    openemrService: 'FhirLocationService.php (LocationService.php: facility, patient and user "Home Address" rows)',
    read: {
      patientScoped: false,
      searchParams: ['_id', 'address', 'name', 'address-city', 'address-state', 'address-postalcode', '_lastUpdated'],
      lastUpdatedColumn: 'facility.last_updated, users.last_updated, patient_data.date (the UNION column last_updated)',
      lastUpdatedFrom: DIRECTORY_LAST_UPDATED_FROM,
      exportedByOpenEmr: true,
      // Searched when read whole (reconcile), else exported (exportsWindows): a patient's "Home Address" row takes
      // its last_updated from patient_data.date, which may be NULL (LocationService.php:79), and never leaves an
      // export.
      connectorExports: false,
      exportsWindows: true,
      scope: 'system/Location.read',
    },
    // The primary business entity (FacilityService::getPrimaryBusinessEntity) on every Location.
    references: [{ element: 'managingOrganization', type: 'Organization' }],
    // Patient and user rows are home addresses: address and telecom go in de-identification mode.
    mapping: { concepts: [], deidDrop: ['text', 'address', 'telecom', 'contained'] },
  },
];

export const KNOWN_RESOURCE_TYPES: readonly string[] = RESOURCE_TYPES.map((t) => t.type);

/** What SYNC_RESOURCE_TYPES defaults to: every row carried by default, in reference order. */
export const DEFAULT_RESOURCE_TYPES: string = orderedTypes(RESOURCE_TYPES.filter((t) => t.carriedByDefault).map((t) => t.type))
  .map((t) => t.type)
  .join(',');

export function specOf(type: string): ResourceTypeSpec {
  const spec = RESOURCE_TYPES.find((t) => t.type === type);
  if (!spec) throw new Error(`Unknown resource type ${type}`);
  return spec;
}

/**
 * The configured types in reference order (rank, ties in table order). Patient is always carried
 * (the clinical types point at it). A reference to a type that is not configured (an Encounter's
 * Practitioner when only Patient and Encounter are carried, a Location's Organization) is not
 * checked: the mapper keeps or drops it as MAPPING_UNCARRIED_REFERENCES says. A reference to a
 * configured type must resolve before its resource is written.
 */
export function orderedTypes(types: readonly string[]): ResourceTypeSpec[] {
  // By rank (a stable sort keeps the table's order within a rank), so a row appended later still takes its place.
  return RESOURCE_TYPES.filter((t) => types.includes(t.type)).sort((a, b) => a.rank - b.rank);
}

/** What is wrong with a SYNC_RESOURCE_TYPES value (never quoting it), or undefined. */
export function resourceTypesProblem(list: readonly string[]): string | undefined {
  if (list.some((t) => !KNOWN_RESOURCE_TYPES.includes(t))) return `must be a comma-separated list of ${KNOWN_RESOURCE_TYPES.join(', ')}`;
  if (!list.includes('Patient')) return 'must include Patient (every other type points at it)';
  return undefined;
}

/** Types read whole (not per Patient), in reference order. */
export function directoryTypes(types: readonly string[]): string[] {
  return orderedTypes(types)
    .filter((t) => t.type !== 'Patient' && !t.read.patientScoped)
    .map((t) => t.type);
}

/** The carried references of a type that point at a configured type. */
export function carriedReferences(type: string, carried: readonly string[]): CarriedReference[] {
  return specOf(type).references.filter((r) => carried.includes(r.type));
}

/**
 * The configured types grouped by rank, in reference order: the unit the sync loop writes and
 * flushes, so every resource of a group is written (or dead-lettered) before the next group's are
 * mapped. Types of one rank never point at each other (a unit test holds the table to it).
 */
export function rankGroups(types: readonly string[]): string[][] {
  const groups: string[][] = [];
  let rank: number | undefined;
  for (const spec of orderedTypes(types)) {
    if (spec.rank !== rank) groups.push([]);
    rank = spec.rank;
    groups[groups.length - 1]!.push(spec.type);
  }
  return groups;
}
