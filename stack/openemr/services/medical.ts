/**
 * How OpenEMR serves Immunization, Procedure, MedicationRequest and AllergyIntolerance, read from its
 * PHP code (royharden/openemr, src/Services/FHIR/…), for the stand-in's store and search:
 * - the row date `_lastUpdated` compares and meta.lastUpdated shows: getLastModifiedSearchField();
 * - the shape an imported (Synthea) resource takes once OpenEMR holds it and serves it back:
 *   parseOpenEMRRecord() writes only what its tables hold.
 */
import type { FhirResource } from '../resource-shape';
import type { MedicalType } from '../standin-types';
export { isMedicalType, MEDICAL_TYPES, type MedicalType } from '../standin-types';

/** Search parameters are the type's entry in standin-types.ts (SEARCH_PARAMS). */
export interface MedicalService {
  /** The element holding the Patient reference (getPatientContextSearchField binds `puuid` to it). */
  patientElement: 'subject' | 'patient';
  /** Candidates for the row date (first one present and after 1970 wins), as the column's meaning. */
  rowDates(r: FhirResource): unknown[];
  /** The column the `date` parameter compares (only types that list `date`). */
  dateOf?(r: FhirResource): unknown;
  /** Token parameters compared with a top-level code element (MedicationRequest intent, status). */
  tokens?: Readonly<Record<string, string>>;
  /** What OpenEMR would serve for an imported resource (elements it has no column for go). */
  shape(r: FhirResource): FhirResource;
}

const MEDICATION_REQUEST_CATEGORY = 'http://terminology.hl7.org/CodeSystem/medicationrequest-category';

export const MEDICAL_SERVICES: Record<MedicalType, MedicalService> = {
  // FhirImmunizationService.php: patient, _id, _lastUpdated (immunizations.update_date, a
  // modification time). Synthea's fields all have a column (cvx_code, administered_date, euuid,
  // primarySource); its Location is a conditional reference, which the store drops.
  Immunization: {
    patientElement: 'patient',
    rowDates: (r) => [r.recorded, r.occurrenceDateTime],
    shape: (r) => r,
  },
  // FhirProcedureService.php: patient, date, _id, _lastUpdated over two sub-services. Synthea's
  // procedures are history entries: FhirProcedureSurgeryService.php (lists type 'surgery') serves
  // them with performedDateTime from begdate (no performedPeriod: lists has one date), no location
  // and no reasonReference (lists.diagnosis holds codes, not Condition rows); the row date is
  // lists.modifydate (`date_modified`), `date` compares begdate.
  Procedure: {
    patientElement: 'subject',
    rowDates: (r) => [r.performedDateTime],
    dateOf: (r) => r.performedDateTime,
    shape: (r) => {
      const period = r.performedPeriod as { start?: unknown } | undefined;
      const out: FhirResource = { resourceType: r.resourceType };
      for (const [k, v] of Object.entries(r)) {
        if (k === 'reasonReference' || k === 'location') continue;
        if (k === 'performedPeriod') {
          if (typeof period?.start === 'string') out.performedDateTime = period.start;
          continue;
        }
        out[k] = v;
      }
      return out;
    },
  },
  // FhirMedicationRequestService.php: patient, intent, status, _id, _lastUpdated
  // (prescriptions.date_modified). populateCategory() always writes a category: the row's
  // usage_category, else "community" (Home/Community); requester is a Practitioner, else the
  // primary business Organization (the stand-in holds neither, so Synthea's conditional one goes).
  MedicationRequest: {
    patientElement: 'subject',
    rowDates: (r) => [r.authoredOn],
    tokens: { intent: 'intent', status: 'status' },
    shape: (r) =>
      r.category
        ? r
        : {
            ...r,
            category: [{ coding: [{ system: MEDICATION_REQUEST_CATEGORY, code: 'community', display: 'Home/Community' }] }],
          },
  },
  // FhirAllergyIntoleranceService.php: patient, _id, _lastUpdated (lists.modifydate).
  AllergyIntolerance: {
    patientElement: 'patient',
    rowDates: (r) => [r.recordedDate],
    shape: (r) => r,
  },
};
