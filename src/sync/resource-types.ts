/**
 * The resource types the connector can carry, as configuration: one row per type with its place in
 * the reference order, how OpenEMR serves it (from its PHP code) and how it is mapped. Orchestrators
 * (source.ts, incremental.ts, sync-service.ts) walk this table; adding a type is a row plus tests.
 * SYNC_RESOURCE_TYPES picks the rows a deployment carries.
 */

/** A carried reference: the element of this type that must resolve in the target before it is written. */
export interface CarriedReference {
  /** Top-level element holding a Reference (FHIR name). */
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
    /** The connector reads it from an export (else always by search). */
    connectorExports: boolean;
    /** The SMART scope a search needs. */
    scope: string;
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

/** Every type the connector knows, in reference order. */
export const RESOURCE_TYPES: readonly ResourceTypeSpec[] = [
  {
    type: 'Patient',
    rank: 0,
    carriedByDefault: true,
    openemrService: 'FhirPatientService.php',
    read: {
      patientScoped: false,
      searchParams: [
        '_id',
        'identifier',
        'name',
        'birthdate',
        'gender',
        'address',
        'family',
        'given',
        'phone',
        'telecom',
        '_lastUpdated',
        '_count',
        '_offset',
        '_sort',
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
      connectorExports: false,
      scope: 'system/Encounter.read',
    },
    references: [{ element: 'subject', type: 'Patient' }],
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
      connectorExports: false,
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
];

export const KNOWN_RESOURCE_TYPES: readonly string[] = RESOURCE_TYPES.map((t) => t.type);

/** What SYNC_RESOURCE_TYPES defaults to: every row carried by default, in reference order. */
export const DEFAULT_RESOURCE_TYPES: string = RESOURCE_TYPES.filter((t) => t.carriedByDefault)
  .map((t) => t.type)
  .join(',');

export function specOf(type: string): ResourceTypeSpec {
  const spec = RESOURCE_TYPES.find((t) => t.type === type);
  if (!spec) throw new Error(`Unknown resource type ${type}`);
  return spec;
}

/**
 * The configured types in reference order. Patient is always carried (everything else points at
 * it); a type whose carried references name a type that is not configured is refused by the
 * settings check (parseResourceTypes), except Encounter references, which the mapper keeps or drops
 * as MAPPING_UNCARRIED_REFERENCES says.
 */
export function orderedTypes(types: readonly string[]): ResourceTypeSpec[] {
  return RESOURCE_TYPES.filter((t) => types.includes(t.type));
}

/** What is wrong with a SYNC_RESOURCE_TYPES value (never quoting it), or undefined. */
export function resourceTypesProblem(list: readonly string[]): string | undefined {
  if (list.some((t) => !KNOWN_RESOURCE_TYPES.includes(t))) return `must be a comma-separated list of ${KNOWN_RESOURCE_TYPES.join(', ')}`;
  if (!list.includes('Patient')) return 'must include Patient (every other type points at it)';
  return undefined;
}

/** The carried references of a type that point at a configured type. */
export function carriedReferences(type: string, carried: readonly string[]): CarriedReference[] {
  return specOf(type).references.filter((r) => carried.includes(r.type));
}
