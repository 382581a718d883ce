/**
 * Rows of the resource-type table (resource-types.ts) for Immunization, Procedure, MedicationRequest
 * and AllergyIntolerance, each read from OpenEMR's own PHP code (royharden/openemr, master mid-2026,
 * src/Services/FHIR/…): loadSearchParameters() (any other parameter empties the answer),
 * getLastModifiedSearchField() (the column `_lastUpdated` and `$export?_since` filter on), whether the
 * service implements IFhirExportableResourceService, and parseOpenEMRRecord() (what the resource holds).
 * All four gained `_lastUpdated` in the commit that fixed openemr#7746 (#7754, released in 7.0.2.2),
 * with Encounter's and Condition's; before it the parameter is unknown and the answer is empty.
 */
import type { ResourceTypeSpec } from './resource-types';

/**
 * Removed in de-identification mode: narrative (AllergyIntolerance's is the list title, unescaped),
 * business identifiers, free-text notes (immunizations.note, lists.comments, prescriptions.note),
 * contained resources.
 */
const DEID_DROP = ['text', 'identifier', 'note', 'contained'] as const;

export const MEDICAL_RESOURCE_TYPES: readonly ResourceTypeSpec[] = [
  {
    type: 'Immunization',
    rank: 2,
    carriedByDefault: true,
    // immunizations table; vaccineCode always labelled CVX (cvx_code); patient (not subject);
    // performer Practitioner only when the provider has an NPI; location a facility Location.
    openemrService: 'FhirImmunizationService.php',
    read: {
      patientScoped: true,
      searchParams: ['patient', '_id', '_lastUpdated'],
      // A modification time: meta.lastUpdated is update_date too (else "now").
      lastUpdatedColumn: 'immunizations.update_date',
      lastUpdatedFrom: '7.0.2.2 (openemr#7746)',
      exportedByOpenEmr: true,
      // update_date is a TIMESTAMP NOT NULL (sql/database.sql): never NULL, never before 1970.
      connectorExports: true,
      scope: 'system/Immunization.read',
    },
    references: [
      { element: 'patient', type: 'Patient' },
      { element: 'encounter', type: 'Encounter' },
    ],
    // The lot number names one vial batch: with the date it singles out the patient.
    mapping: { concepts: ['vaccineCode', 'statusReason', 'site', 'route'], deidDrop: [...DEID_DROP, 'lotNumber'] },
  },
  {
    type: 'Procedure',
    rank: 2,
    carriedByDefault: true,
    // Two sub-services answered together: procedure orders (procedure_order + procedure_report;
    // code from the order's code type, else its standard_code labelled LOINC; performedDateTime
    // from the report date, else the order date, else a data-absent extension object under US Core
    // 3.1.1) and surgeries from the problem list (lists type 'surgery'; code from lists.diagnosis
    // "SNOMED-CT:…;CPT4:…", performedDateTime from begdate).
    openemrService: 'FhirProcedureService.php (FhirProcedureOEProcedureService.php, FhirProcedureSurgeryService.php)',
    read: {
      patientScoped: true,
      searchParams: ['patient', 'date', '_id', '_lastUpdated'],
      // Orders: the clinical report date (a NULL one never matches); surgeries: lists.modifydate.
      lastUpdatedColumn: 'per sub-service (orders: procedure_report.report_date; surgeries: lists.modifydate)',
      lastUpdatedFrom: '7.0.2.2 (openemr#7746)',
      exportedByOpenEmr: true,
      // Searched when read whole (reconcile; a pre-1970 type's first run), else exported (exportsWindows): an order's
      // procedure_report.date_report is NULL until a report is filed (sql/database.sql), and such orders never leave
      // an export (FhirBulkExportDomainResourceTrait.php:71-73).
      connectorExports: false,
      exportsWindows: true,
      scope: 'system/Procedure.read',
    },
    // FhirProcedureOEProcedureService.php parseOpenEMRRecord (royharden/openemr): basedOn ->
    // ServiceRequest (the procedure_order, on every order) is not a carried type: kept or dropped as
    // MAPPING_UNCARRIED_REFERENCES says, as is performer.actor (Practitioner). Its reasonReference ->
    // Condition is set only from a reason_reference_uuid that ProcedureService::search never selects
    // (nor does the surgery sub-service), so OpenEMR serves none: carrying it would need Procedure
    // ranked above Condition (the rank-groups unit test holds references to lower ranks).
    references: [
      { element: 'subject', type: 'Patient' },
      { element: 'encounter', type: 'Encounter' },
    ],
    mapping: { concepts: ['code', 'category', 'reasonCode'], deidDrop: DEID_DROP },
  },
  {
    type: 'MedicationRequest',
    rank: 2,
    carriedByDefault: true,
    // prescriptions UNION lists type 'medication'; medicationCodeableConcept labelled RxNorm from
    // prescriptions.rxnorm_drugcode, else drugs.drug_code (the local inventory code); requester a
    // Practitioner, else the primary business Organization; category default "community".
    openemrService: 'FhirMedicationRequestService.php',
    read: {
      patientScoped: true,
      searchParams: ['patient', 'intent', 'status', '_id', '_lastUpdated'],
      lastUpdatedColumn: 'prescriptions.date_modified (medication list rows: lists.modifydate)',
      lastUpdatedFrom: '7.0.2.2 (openemr#7746)',
      exportedByOpenEmr: true,
      // Searched when read whole (reconcile; a pre-1970 type's first run), else exported (exportsWindows):
      // prescriptions.date_modified is DEFAULT NULL, and imports insert without it
      // (interface/modules/zend_modules/module/Ccr/src/Ccr/Model/CcrTable.php:327,
      // src/Services/Cda/CdaTemplateImportDispose.php:1275): those prescriptions never leave an export.
      connectorExports: false,
      exportsWindows: true,
      scope: 'system/MedicationRequest.read',
    },
    references: [
      { element: 'subject', type: 'Patient' },
      { element: 'encounter', type: 'Encounter' },
    ],
    mapping: { concepts: ['medicationCodeableConcept', 'category', 'reasonCode'], deidDrop: DEID_DROP },
  },
  {
    type: 'AllergyIntolerance',
    rank: 2,
    carriedByDefault: true,
    // lists type 'allergy'; category always "medication"; code from lists.diagnosis (RXCUI/SNOMED)
    // or a data-absent "unknown" concept; the title as an "additional" narrative, unescaped; no encounter.
    openemrService: 'FhirAllergyIntoleranceService.php',
    read: {
      patientScoped: true,
      searchParams: ['patient', '_id', '_lastUpdated'],
      lastUpdatedColumn: 'lists.modifydate',
      lastUpdatedFrom: '7.0.2.2 (openemr#7746)',
      exportedByOpenEmr: true,
      // lists.modifydate is a TIMESTAMP NOT NULL ON UPDATE CURRENT_TIMESTAMP: never NULL, never before 1970.
      connectorExports: true,
      scope: 'system/AllergyIntolerance.read',
    },
    references: [{ element: 'patient', type: 'Patient' }],
    mapping: { concepts: ['code'], deidDrop: DEID_DROP },
  },
];
