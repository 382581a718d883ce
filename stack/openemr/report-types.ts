/**
 * DiagnosticReport and DocumentReference as OpenEMR serves them (royharden/openemr
 * src/Services/FHIR/FhirDiagnosticReportService.php, FhirDocumentReferenceService.php and their
 * sub-services under DiagnosticReport/ and DocumentReference/): the search parameters their
 * loadSearchParameters() list, the date column `_lastUpdated` compares and meta.lastUpdated shows,
 * and what a stored row is searched by.
 */
import { instantSeconds } from './fhir-dates';
import { codingTokens, FhirResource } from './resource-shape';

export type ReportType = 'DiagnosticReport' | 'DocumentReference';

/**
 * Search parameters (the parent services' lists; each sub-service lists the same names). `_lastUpdated`
 * came with the fix of openemr#7746 (commit 48527473b, 7.0.2.2), as Encounter's and Condition's did.
 */
export const REPORT_SEARCH_PARAMS: Record<ReportType, readonly string[]> = {
  DiagnosticReport: ['patient', 'code', 'category', 'date', '_id', '_lastUpdated'],
  DocumentReference: ['patient', 'type', 'category', 'date', '_id', '_lastUpdated'],
};

/** The element each type's `code`/`type` token parameter searches. */
export const REPORT_CODE_PARAM: Record<ReportType, string> = { DiagnosticReport: 'code', DocumentReference: 'type' };

export function isReportType(type: string): type is ReportType {
  return type === 'DiagnosticReport' || type === 'DocumentReference';
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

/** What a stored report is searched by: its Patient, code/type and category tokens, and its `date`. */
export function reportRecordFields(
  resource: FhirResource,
  offsetMinutes: number,
  intern: (s: string) => string,
): { patientId?: string; codeTokens: string[]; categoryTokens: string[]; effective?: number } {
  const subject = (resource.subject as { reference?: unknown } | undefined)?.reference;
  const isReport = resource.resourceType === 'DiagnosticReport';
  // DiagnosticReport `date` is its effective time; DocumentReference `date` its date element.
  const dated = isReport
    ? (resource.effectiveDateTime ?? (resource.effectivePeriod as { start?: unknown } | undefined)?.start)
    : resource.date;
  const effective = instantSeconds(dated, offsetMinutes);
  return {
    ...(typeof subject === 'string' && subject.startsWith('Patient/') ? { patientId: intern(subject.slice(8)) } : {}),
    codeTokens: codingTokens(isReport ? resource.code : resource.type, intern),
    categoryTokens: codingTokens(resource.category, intern),
    ...(effective !== null ? { effective } : {}),
  };
}
