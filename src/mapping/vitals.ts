import type { CodeableConcept, Observation, ObservationComponent } from '@medplum/fhirtypes';
import { isValidFhirId } from '../fhir/ids';
import { LOINC, OBSERVATION_CATEGORY, OBSERVATION_STATUSES, UCUM } from './codes';

export const US_CORE_VITAL_SIGNS = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-vital-signs';

/**
 * LOINC codes of the FHIR R4 vital signs value set (observation-vitalsignresult) plus the ones US
 * Core's vital-signs profiles add, each with the UCUM units the profiles' required bindings allow
 * (FHIR R4 §"Vital Signs", US Core body-weight/height/temperature/heart-rate/respiratory-rate/
 * pulse-oximetry/bmi/blood-pressure/head-circumference/pediatric-percentile profiles). Panels carry
 * no value of their own (null).
 */
const VITAL_SIGN_UNITS: ReadonlyMap<string, ReadonlySet<string> | null> = new Map<string, ReadonlySet<string> | null>([
  ['85353-1', null], // Vital signs panel (hasMember)
  ['85354-9', null], // Blood pressure panel (components)
  ['9279-1', new Set(['/min'])], // Respiratory rate
  ['8867-4', new Set(['/min'])], // Heart rate
  ['2708-6', new Set(['%'])], // Oxygen saturation in arterial blood
  ['59408-5', new Set(['%'])], // Oxygen saturation by pulse oximetry
  ['8310-5', new Set(['Cel', '[degF]'])], // Body temperature
  ['8302-2', new Set(['cm', '[in_i]'])], // Body height
  ['8306-3', new Set(['cm', '[in_i]'])], // Body height lying
  ['9843-4', new Set(['cm', '[in_i]'])], // Head occipital-frontal circumference
  ['29463-7', new Set(['kg', 'g', '[lb_av]'])], // Body weight
  ['39156-5', new Set(['kg/m2'])], // BMI
  ['8480-6', new Set(['mm[Hg]'])], // Systolic blood pressure
  ['8462-4', new Set(['mm[Hg]'])], // Diastolic blood pressure
  ['8478-0', new Set(['mm[Hg]'])], // Mean blood pressure
  ['3150-0', new Set(['%'])], // Inhaled oxygen concentration
  ['3151-8', new Set(['L/min'])], // Inhaled oxygen flow rate
  ['59576-9', new Set(['%'])], // BMI percentile per age and sex
  ['8289-1', new Set(['%'])], // Head circumference percentile
  ['77606-2', new Set(['%'])], // Weight-for-length percentile
]);

/** The vital-sign LOINC code of a CodeableConcept, if it has one. */
export function vitalSignCode(cc: CodeableConcept | undefined): string | undefined {
  for (const c of cc?.coding ?? []) {
    if (c.system === LOINC && c.code !== undefined && VITAL_SIGN_UNITS.has(c.code)) return c.code;
  }
  return undefined;
}

export function hasVitalSignsCategory(obs: Observation): boolean {
  return (obs.category ?? []).some((cat) => (cat.coding ?? []).some((c) => c.system === OBSERVATION_CATEGORY && c.code === 'vital-signs'));
}

/** A fresh object each time: outputs never share structure, so changing one cannot change another. */
export function vitalSignsCategory(): CodeableConcept {
  return { coding: [{ system: OBSERVATION_CATEGORY, code: 'vital-signs', display: 'Vital Signs' }], text: 'Vital Signs' };
}

/** us-core-1: a dateTime at least to the day. */
const DAY_PRECISION = /^\d{4}-\d{2}-\d{2}/;

/**
 * Whether the Observation satisfies the US Core vital-signs profile as far as the mapper can tell:
 * status, the vital-signs category, a vital-sign LOINC code, a Patient subject, effectiveDateTime
 * (or a Period starting) at least to the day, and a valueQuantity coded in UCUM with a unit the
 * profile's binding allows for that vital, or a dataAbsentReason; panels need their members or
 * components instead, and every component must meet the same value rule.
 */
export function isValidUsCoreVitalSign(obs: Observation): boolean {
  const code = vitalSignCode(obs.code);
  if (code === undefined) return false;
  if (!OBSERVATION_STATUSES.has(obs.status)) return false;
  if (!hasVitalSignsCategory(obs)) return false;
  if (!obs.subject?.reference?.startsWith('Patient/') || !isValidFhirId(obs.subject.reference.slice('Patient/'.length))) return false;
  const effective = obs.effectiveDateTime ?? obs.effectivePeriod?.start;
  if (effective === undefined || !DAY_PRECISION.test(effective)) return false;
  for (const comp of obs.component ?? []) {
    if (!valueOk(comp, vitalSignCode(comp.code))) return false;
  }
  if (code === '85353-1') return (obs.hasMember?.length ?? 0) > 0 || obs.dataAbsentReason !== undefined;
  if (code === '85354-9') {
    const comps = obs.component ?? [];
    const has = (c: string) => comps.some((x) => vitalSignCode(x.code) === c);
    return has('8480-6') && has('8462-4');
  }
  return valueOk(obs, code);
}

function valueOk(holder: Observation | ObservationComponent, code: string | undefined): boolean {
  const otherValue = Object.keys(holder).some((k) => k.startsWith('value') && k !== 'valueQuantity');
  if (otherValue) return false;
  const q = holder.valueQuantity;
  if (q === undefined) return holder.dataAbsentReason !== undefined;
  if (q.value === undefined || q.system !== UCUM || q.code === undefined) return false;
  const allowed = code === undefined ? undefined : VITAL_SIGN_UNITS.get(code);
  return allowed ? allowed.has(q.code) : true;
}
