/**
 * DiagnosticReport and DocumentReference as OpenEMR serves them (royharden/openemr
 * src/Services/FHIR/FhirDiagnosticReportService.php, FhirDocumentReferenceService.php and their
 * sub-services under DiagnosticReport/ and DocumentReference/): which sub-service a row comes from
 * and which one a `category` search asks, the date column `_lastUpdated` compares and
 * meta.lastUpdated shows, and what a stored row is searched by. Their search parameters (the parent
 * services' loadSearchParameters(); each sub-service lists the same names) are in standin-types.ts.
 */
import { instantSeconds } from './fhir-dates';
import { codingTokens, FhirResource } from './resource-shape';
import type { ReportType } from './standin-types';
export { isReportType, type ReportType } from './standin-types';

/** The element each type's `code`/`type` token parameter searches. */
export const REPORT_CODE_PARAM: Record<ReportType, string> = { DiagnosticReport: 'code', DocumentReference: 'type' };

/**
 * One of the services a report type's parent maps (addMappedService, in this order). A search with
 * `category` goes to ONE of them (MappedServiceCodeTrait::getServiceForCategory): the first category
 * value whose code a sub-service supportsCategory() picks the first such sub-service; no value that
 * any supports is a SearchFieldException, which the REST controller's getAll turns into an empty
 * bundle. Without `category`, searchAllServices asks each in order and concatenates their rows.
 */
export interface ReportSubService {
  name: string;
  supportsCategory(code: string): boolean;
  /**
   * Whether the sub-service then compares `category` with its rows: only the DiagnosticReport clinical
   * notes do (category_code IN 'LOINC:<code>'…); the others unset the parameter (searchForOpenEMRRecords).
   */
  filtersCategory: boolean;
  /** Whether a stored resource is one of its rows (by its category codes). */
  holds(categoryCodes: readonly string[]): boolean;
}

/** Clinical_Note_Category list options (sql/database.sql: cardiology, pathology, radiology), notes `LOINC:<code>`. */
export const CLINICAL_NOTE_CATEGORIES: readonly string[] = ['LP29708-2', 'LP7839-6', 'LP29684-5'];
/** FhirDiagnosticReportLaboratoryService::LAB_CATEGORY (v2-0074). */
export const LAB_CATEGORY = 'LAB';
/** DocumentReferenceCategoryEnum: CLINICAL_NOTE, ADVANCE_CARE_DIRECTIVE (LOINC 42348-3). */
export const DOCUMENT_CATEGORIES = { clinicalNote: 'clinical-note', advanceCareDirective: '42348-3' } as const;

const isDocumentEnumCategory = (code: string) =>
  code === DOCUMENT_CATEGORIES.clinicalNote || code === DOCUMENT_CATEGORIES.advanceCareDirective;

export const REPORT_SUB_SERVICES: Record<ReportType, readonly ReportSubService[]> = {
  DiagnosticReport: [
    // DiagnosticReport/FhirDiagnosticReportClinicalNotesService.php supportsCategory: the code is a
    // Clinical_Note_Category option; its rows are the notes that have a category_code.
    {
      name: 'clinical-notes',
      supportsCategory: (code) => CLINICAL_NOTE_CATEGORIES.includes(code),
      filtersCategory: true,
      holds: (codes) => !codes.includes(LAB_CATEGORY),
    },
    // DiagnosticReport/FhirDiagnosticReportLaboratoryService.php: supportsCategory `=== LAB`, and its
    // search ignores category ("this service ignores category_code").
    {
      name: 'laboratory',
      supportsCategory: (code) => code === LAB_CATEGORY,
      filtersCategory: false,
      holds: (codes) => codes.includes(LAB_CATEGORY),
    },
  ],
  DocumentReference: [
    // DocumentReference/FhirClinicalNotesService.php: CATEGORY 'clinical-note'; unsets category.
    {
      name: 'clinical-notes',
      supportsCategory: (code) => code === DOCUMENT_CATEGORIES.clinicalNote,
      filtersCategory: false,
      holds: (codes) => codes.includes(DOCUMENT_CATEGORIES.clinicalNote),
    },
    // DocumentReference/FhirPatientDocumentReferenceService.php supportsCategory: any code that is not a
    // DocumentReferenceCategoryEnum case; unsets category ("we have nothing with this category").
    {
      name: 'patient-documents',
      supportsCategory: (code) => !isDocumentEnumCategory(code),
      filtersCategory: false,
      holds: (codes) => !codes.some(isDocumentEnumCategory),
    },
    // DocumentReference/FhirDocumentReferenceAdvanceCareDirectiveService.php: ADVANCE_CARE_DIRECTIVE only.
    {
      name: 'advance-directive',
      supportsCategory: (code) => code === DOCUMENT_CATEGORIES.advanceCareDirective,
      filtersCategory: false,
      holds: (codes) => !codes.includes(DOCUMENT_CATEGORIES.clinicalNote) && codes.includes(DOCUMENT_CATEGORIES.advanceCareDirective),
    },
  ],
};

/** The sub-service a stored report belongs to, from its category tokens (`system|code`). */
export function reportSubServiceOf(type: ReportType, categoryTokens: readonly string[]): string {
  const codes = categoryTokens.map((t) => t.slice(t.indexOf('|') + 1));
  return (REPORT_SUB_SERVICES[type].find((s) => s.holds(codes)) ?? REPORT_SUB_SERVICES[type][0]!).name;
}

/** The sub-service a `category` search goes to (getServiceForCategory); undefined: none supports any value. */
export function reportSubServiceFor(type: ReportType, categoryValues: readonly string[]): ReportSubService | undefined {
  for (const value of categoryValues) {
    const code = value.slice(value.indexOf('|') + 1);
    const service = REPORT_SUB_SERVICES[type].find((s) => s.supportsCategory(code));
    if (service) return service;
  }
  return undefined;
}

/**
 * The row date of a loaded report, in epoch seconds (undefined: not a report type or no date).
 * - DiagnosticReport: clinical notes filter and stamp on form_clinical_notes.last_updated
 *   (FhirDiagnosticReportClinicalNotesService.php getLastModifiedSearchField/populateMeta), a row
 *   written when the note is signed: `issued`; labs on procedure_report.report_date
 *   (FhirDiagnosticReportLaboratoryService.php), the report date: also `issued`, else the effective time.
 * - DocumentReference: every sub-service on its `date` column (FhirClinicalNotesService.php:
 *   form_clinical_notes.date, the note's clinical date; FhirPatientDocumentReferenceService.php:
 *   documents.date): `date`.
 * null: the row was written at the load (a note dated before 1970, which form_clinical_notes.last_updated,
 * a TIMESTAMP, cannot hold; documents.date and form_clinical_notes.date are DATETIMEs and can).
 */
export function reportRowDate(resource: FhirResource, offsetMinutes: number): number | null | undefined {
  const candidates =
    resource.resourceType === 'DiagnosticReport'
      ? [resource.issued, resource.effectiveDateTime, (resource.effectivePeriod as { start?: unknown } | undefined)?.start]
      : resource.resourceType === 'DocumentReference'
        ? [resource.date]
        : [];
  for (const candidate of candidates) {
    const seconds = instantSeconds(candidate, offsetMinutes);
    if (seconds !== null) return resource.resourceType === 'DiagnosticReport' && seconds <= 0 ? null : seconds;
  }
  return undefined;
}

/** What a stored report is searched by: its Patient, code/type and category tokens, its sub-service and its `date`. */
export function reportRecordFields(
  resource: FhirResource,
  offsetMinutes: number,
  intern: (s: string) => string,
): { patientId?: string; codeTokens: string[]; categoryTokens: string[]; subService: string; effective?: number } {
  const subject = (resource.subject as { reference?: unknown } | undefined)?.reference;
  const isReport = resource.resourceType === 'DiagnosticReport';
  // DiagnosticReport `date` is its effective time; DocumentReference `date` its date element.
  const dated = isReport
    ? (resource.effectiveDateTime ?? (resource.effectivePeriod as { start?: unknown } | undefined)?.start)
    : resource.date;
  const effective = instantSeconds(dated, offsetMinutes);
  const categoryTokens = codingTokens(resource.category, intern);
  return {
    ...(typeof subject === 'string' && subject.startsWith('Patient/') ? { patientId: intern(subject.slice(8)) } : {}),
    codeTokens: codingTokens(isReport ? resource.code : resource.type, intern),
    categoryTokens,
    subService: reportSubServiceOf(isReport ? 'DiagnosticReport' : 'DocumentReference', categoryTokens),
    ...(effective !== null ? { effective } : {}),
  };
}
