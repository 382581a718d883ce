/**
 * Attachments of DiagnosticReport.presentedForm and DocumentReference.content[].attachment.
 *
 * OpenEMR serves two kinds (royharden/openemr src/Services/FHIR/…):
 * - clinical notes (DiagnosticReport/FhirDiagnosticReportClinicalNotesService.php,
 *   DocumentReference/FhirClinicalNotesService.php): the note's text inline, `data` = base64 of
 *   form_clinical_notes.description, contentType text/plain. Carried as they are: the text is the
 *   record, and it is small (the sample's largest resource is 2.7 kB).
 * - patient documents (DocumentReference/FhirPatientDocumentReferenceService.php, through
 *   Trait/FhirDocumentReferenceTrait.php populateContent): no data, `url` =
 *   `{site_addr_oath}/apis/{site}/fhir/Binary/<documents.uuid>`, OpenEMR's own download route
 *   (FhirDocumentRestController::downloadDocument, raw bytes, an OpenEMR token with admin ACL).
 *   That url is removed: in the target it would be a Binary reference that resolves to nothing
 *   there (AHDS has no such Binary), and to anyone following it, a link into OpenEMR that needs
 *   OpenEMR's credentials. Copying the bytes instead would make the pure mapper read OpenEMR and
 *   put documents of any size (scans, PDFs) through AHDS's request limit; the target keeps what the
 *   document is (contentType, title, format) and the source keeps the document.
 *
 * In de-identification mode an attachment keeps only its contentType and language: its data and
 * title are free text that may name the patient, its hash and size fingerprint that text, and its
 * creation date would not be shifted.
 */

type Json = Record<string, unknown>;

/** A url that points at OpenEMR's Binary download route (absolute, as OpenEMR builds it, or relative). */
const OPENEMR_BINARY_URL = /(?:^|\/)Binary\/[^/?#]+$/;

const DATA_ABSENT_REASON = 'http://hl7.org/fhir/StructureDefinition/data-absent-reason';

const DEID_KEPT = new Set(['contentType', 'language']);

/** The attachments of a mapped body, per type (the elements the two types hold them in). */
function attachmentsOf(type: string, body: Json): Json[] {
  if (type === 'DiagnosticReport') return Array.isArray(body.presentedForm) ? (body.presentedForm as Json[]) : [];
  if (type === 'DocumentReference' && Array.isArray(body.content))
    return (body.content as Json[]).flatMap((c) => (c && typeof c.attachment === 'object' ? [c.attachment as Json] : []));
  return [];
}

/** Applies the attachment policy in place to a mapped body. */
export function mapAttachments(type: string, body: Json, options: { deid: boolean }): void {
  for (const attachment of attachmentsOf(type, body)) {
    if (typeof attachment.url === 'string' && OPENEMR_BINARY_URL.test(attachment.url)) delete attachment.url;
    if (options.deid) for (const key of Object.keys(attachment)) if (!DEID_KEPT.has(key) && key !== 'extension') delete attachment[key];
    // FHIR forbids an empty object, and DocumentReference.content.attachment is required: say why it is empty.
    if (Object.keys(attachment).length === 0)
      attachment.extension = [{ url: DATA_ABSENT_REASON, valueCode: options.deid ? 'masked' : 'unsupported' }];
  }
}
