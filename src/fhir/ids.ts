/** FHIR R4 id rule: 1-64 characters of A-Z, a-z, 0-9, '-' and '.'. */
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

export function isValidFhirId(value: unknown): value is string {
  return typeof value === 'string' && FHIR_ID.test(value);
}
