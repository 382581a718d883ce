/** Code systems and code checks the mapping stage relies on. */

export const LOINC = 'http://loinc.org';
export const SNOMED = 'http://snomed.info/sct';
export const UCUM = 'http://unitsofmeasure.org';
/**
 * CIEL (Columbia International eHealth Laboratory) concept dictionary, the dictionary OpenMRS uses.
 * https://cielterminology.org is the canonical URL of the CIEL source in the Open Concept Lab
 * (OCL) terminology server and the system the OpenMRS FHIR2 module writes for CIEL codes.
 */
export const CIEL = 'https://cielterminology.org';
export const OBSERVATION_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
export const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
export const US_SSN = 'http://hl7.org/fhir/sid/us-ssn';
/** The HL7 OID of the US SSN namespace, the same thing as US_SSN in OID form. */
export const US_SSN_OID = 'urn:oid:2.16.840.1.113883.4.1';

const LOINC_SHAPE = /^(\d{1,7})-(\d)$/;

/**
 * LOINC's own check: the code is digits, a hyphen and a mod-10 check digit computed with the
 * Luhn algorithm over the digits before the hyphen (LOINC Users' Guide, "Check digit").
 */
export function isValidLoinc(code: string): boolean {
  const m = LOINC_SHAPE.exec(code);
  if (!m) return false;
  return luhnCheckDigit(m[1]!) === Number(m[2]);
}

/** Luhn (mod 10) check digit of a string of digits. */
function luhnCheckDigit(digits: string): number {
  let sum = 0;
  // The rightmost digit is doubled first, as the check digit is appended after it.
  for (let i = digits.length - 1, double = true; i >= 0; i--, double = !double) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return (10 - (sum % 10)) % 10;
}

// Verhoeff tables (dihedral group D5), used by SNOMED CT identifiers.
const VERHOEFF_D = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
  [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
  [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
  [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
  [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
  [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
  [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
  [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
  [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];
const VERHOEFF_P = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
  [5, 8, 0, 3, 7, 9, 6, 2, 4, 1],
  [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
  [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
  [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
  [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
  [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

/**
 * SNOMED CT identifier check: 6-18 digits, no leading zero, last digit a Verhoeff check digit
 * (SNOMED CT Technical Implementation Guide, "Check-digit").
 */
export function isValidSnomedId(code: string): boolean {
  if (!/^[1-9]\d{5,17}$/.test(code)) return false;
  let c = 0;
  for (let i = code.length - 1, pos = 0; i >= 0; i--, pos++) {
    c = VERHOEFF_D[c]![VERHOEFF_P[pos % 8]![code.charCodeAt(i) - 48]!]!;
  }
  return c === 0;
}

export const RXNORM = 'http://www.nlm.nih.gov/research/umls/rxnorm';
export const CVX = 'http://hl7.org/fhir/sid/cvx';

/**
 * RxNorm concept ids (RXCUI) are positive integers without leading zeros (below 10^8 today). OpenEMR
 * labels `drugs.drug_code`, the local inventory code (an NDC with hyphens, a formulary code), as
 * RxNorm when a prescription has no rxnorm_drugcode (PrescriptionService.php, FhirMedicationRequestService
 * populateMedication()): such a code fails this check.
 */
export function isValidRxcui(code: string): boolean {
  return /^[1-9]\d{0,7}$/.test(code);
}

/** CVX codes are one to three digits ("08", "140"); OpenEMR writes immunizations.cvx_code as CVX unchecked. */
export function isValidCvx(code: string): boolean {
  return /^\d{1,3}$/.test(code);
}

/** Systems whose codes the mapper can check; a coding labelled with one that fails is not sent so. */
export const CHECKED_SYSTEMS: ReadonlyMap<string, (code: string) => boolean> = new Map([
  [LOINC, isValidLoinc],
  [SNOMED, isValidSnomedId],
  [RXNORM, isValidRxcui],
  [CVX, isValidCvx],
]);

/**
 * Systems counted as standard: a CodeableConcept holding a coding in one of them is not reported
 * as unmapped.
 */
export function isStandardSystem(system: string): boolean {
  return (
    system === LOINC ||
    system === SNOMED ||
    system === UCUM ||
    system === RXNORM ||
    system === 'http://hl7.org/fhir/sid/icd-10-cm' ||
    system === 'http://hl7.org/fhir/sid/icd-10' ||
    system === CVX ||
    system === 'urn:oid:2.16.840.1.113883.6.238' ||
    system === 'urn:ietf:bcp:47' ||
    system.startsWith('http://terminology.hl7.org/CodeSystem/') ||
    system.startsWith('http://hl7.org/fhir/')
  );
}

/** Observation.status's required value set (observation-status). */
export const OBSERVATION_STATUSES: ReadonlySet<string> = new Set([
  'registered',
  'preliminary',
  'final',
  'amended',
  'corrected',
  'cancelled',
  'entered-in-error',
  'unknown',
]);
