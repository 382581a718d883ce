/**
 * A small AllergyIntolerance sample in the shape OpenEMR serves (the Synthea bundles of
 * data/synthea-dev have none): what royharden/openemr src/Services/FHIR/FhirAllergyIntoleranceService.php
 * parseOpenEMRRecord() writes for `lists` rows of type 'allergy':
 * - meta.versionId "1", meta.lastUpdated = lists.modifydate (the `_lastUpdated` column);
 * - clinicalStatus (allergyintolerance-clinical, display ucwords(code)): "active" without an end
 *   date, "resolved" with one and outcome 1, else "inactive";
 * - category always ["medication"], whatever the allergen;
 * - criticality from severity_al (mild/moderate -> low, severe/… -> high, unassigned -> unable-to-assess);
 * - patient = Patient/<puuid>; no recorder (a provider without an NPI is left out), no encounter;
 * - reaction[0].manifestation from the reaction list option (SNOMED CT), text = its title; none
 *   for "unassigned";
 * - code from lists.diagnosis (RXCUI -> RxNorm, SNOMED-CT -> SNOMED CT), else the data-absent
 *   "unknown" concept (UtilsService::createDataAbsentUnknownCodeableConcept);
 * - text: the list title as an "additional" narrative, **not escaped** (UtilsService::createNarrative
 *   concatenates it into `<div xmlns='…'>`), so a title with `&` is invalid XHTML;
 * - verificationStatus (allergyintolerance-verification): the row's value, else "unconfirmed".
 * Deterministic: the same Patient ids always give the same resources (ids are name-based UUIDs).
 * scripts/make-allergy-sample.ts writes data/synthea-dev/AllergyIntolerance.ndjson from it.
 */
import { createHash } from 'node:crypto';
import type { FhirResource } from '../resource-shape';

const RXNORM = 'http://www.nlm.nih.gov/research/umls/rxnorm';
const SNOMED = 'http://snomed.info/sct';
const CLINICAL = 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical';
const VERIFICATION = 'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification';
const DATA_ABSENT = 'http://terminology.hl7.org/CodeSystem/data-absent-reason';

interface AllergyRow {
  title: string;
  diagnosis?: { system: string; code: string; display: string };
  reaction?: { code: string; title: string };
  severity: 'mild' | 'moderate' | 'severe' | 'unassigned';
  verification?: 'confirmed' | 'refuted';
  ended?: { outcome: '0' | '1' };
}

const CRITICALITY: Record<AllergyRow['severity'], string> = {
  mild: 'low',
  moderate: 'low',
  severe: 'high',
  unassigned: 'unable-to-assess',
};

/** The rows the sample cycles through: coded and uncoded, with and without a reaction, active and ended. */
const ROWS: readonly AllergyRow[] = [
  {
    title: 'Penicillin G',
    diagnosis: { system: RXNORM, code: '7980', display: 'penicillin G' },
    reaction: { code: '247472004', title: 'Hives' },
    severity: 'moderate',
    verification: 'confirmed',
  },
  {
    title: 'Sulfa drugs & sulfonamides',
    diagnosis: { system: RXNORM, code: '10180', display: 'sulfamethoxazole' },
    reaction: { code: '271807003', title: 'Skin rash' },
    severity: 'mild',
  },
  {
    title: 'Latex',
    diagnosis: { system: SNOMED, code: '111088007', display: 'Latex (substance)' },
    severity: 'severe',
    verification: 'confirmed',
  },
  { title: 'Shellfish <unspecified>', reaction: { code: '39579001', title: 'Anaphylaxis' }, severity: 'severe' },
  {
    title: 'Codeine',
    diagnosis: { system: RXNORM, code: '2670', display: 'codeine' },
    reaction: { code: '422587007', title: 'Nausea' },
    severity: 'unassigned',
    ended: { outcome: '1' },
  },
  { title: 'Aspirin', diagnosis: { system: RXNORM, code: '1191', display: 'aspirin' }, severity: 'mild', ended: { outcome: '0' } },
];

/** A name-based UUID (v5 layout) from a seed: stable across runs and machines. */
function uuidFrom(seed: string): string {
  const h = createHash('sha1').update(`openemr-allergy-sample:${seed}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function allergyOf(patientId: string, row: AllergyRow, n: number): FhirResource {
  const clinical = row.ended ? (row.ended.outcome === '1' ? 'resolved' : 'inactive') : 'active';
  const cap = (s: string) => s.replace(/\b\w/g, (c) => c.toUpperCase());
  // lists.modifydate: spread over 2024 so `_lastUpdated` windows split the sample.
  const modified = new Date(Date.UTC(2024, n % 12, 1 + (n % 27), 9, 30, 0)).toISOString().replace('.000Z', '+00:00');
  return {
    resourceType: 'AllergyIntolerance',
    id: uuidFrom(`${patientId}:${row.title}`),
    meta: { versionId: '1', lastUpdated: modified },
    clinicalStatus: { coding: [{ system: CLINICAL, code: clinical, display: cap(clinical) }] },
    category: ['medication'],
    criticality: CRITICALITY[row.severity],
    patient: { reference: `Patient/${patientId}` },
    ...(row.reaction
      ? {
          reaction: [
            {
              manifestation: [
                { text: row.reaction.title, coding: [{ system: SNOMED, code: row.reaction.code, display: row.reaction.title }] },
              ],
            },
          ],
        }
      : {}),
    code: row.diagnosis
      ? { coding: [{ system: row.diagnosis.system, code: row.diagnosis.code, display: row.diagnosis.display }] }
      : { coding: [{ system: DATA_ABSENT, code: 'unknown', display: 'Unknown' }] },
    text: { status: 'additional', div: `<div xmlns='http://www.w3.org/1999/xhtml'>${row.title}</div>` },
    verificationStatus: {
      coding: [
        row.verification
          ? { system: VERIFICATION, code: row.verification, display: cap(row.verification) }
          : { system: VERIFICATION, code: 'unconfirmed', display: 'Unconfirmed' },
      ],
    },
  };
}

/** Allergies for every other Patient (in the order given), one or two rows each. */
export function sampleAllergies(patientIds: readonly string[]): FhirResource[] {
  const out: FhirResource[] = [];
  let n = 0;
  patientIds.forEach((patientId, i) => {
    if (i % 2 === 1) return;
    const count = i % 4 === 0 ? 2 : 1;
    for (let k = 0; k < count; k++) out.push(allergyOf(patientId, ROWS[n % ROWS.length]!, n++));
  });
  return out;
}

/** The sample as NDJSON for the Patients of a Patient.ndjson text (in its line order). */
export function allergySampleNdjson(patientNdjson: string): string {
  const ids = patientNdjson
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => (JSON.parse(l) as { id: string }).id);
  return sampleAllergies(ids)
    .map((r) => JSON.stringify(r))
    .join('\n')
    .concat('\n');
}
