/** Whole-second instants: OpenEMR compares lastUpdated at one-second precision. */
export function floorSecond(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

export { iso } from '../openemr/patient-pages';
