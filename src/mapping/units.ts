import type { Quantity } from '@medplum/fhirtypes';
import { UCUM } from './codes';

/**
 * Unit strings seen in EHR exports that are not UCUM (or are UCUM but mean something else in a
 * clinical record: "C" is coulomb and "F" farad in UCUM, but Celsius and Fahrenheit in a vitals
 * form), with the UCUM code they stand for. Keys are compared as given and then lower-cased.
 */
const ALIASES: Record<string, string> = {
  C: 'Cel',
  '°C': 'Cel',
  degC: 'Cel',
  'deg C': 'Cel',
  celsius: 'Cel',
  F: '[degF]',
  '°F': '[degF]',
  degF: '[degF]',
  'deg F': '[degF]',
  fahrenheit: '[degF]',
  lb: '[lb_av]',
  lbs: '[lb_av]',
  lb_av: '[lb_av]',
  pound: '[lb_av]',
  pounds: '[lb_av]',
  oz: '[oz_av]',
  in: '[in_i]',
  inch: '[in_i]',
  inches: '[in_i]',
  in_i: '[in_i]',
  ft: '[ft_i]',
  mmHg: 'mm[Hg]',
  'mm Hg': 'mm[Hg]',
  mmhg: 'mm[Hg]',
  bpm: '/min',
  'beats/min': '/min',
  'beats/minute': '/min',
  'breaths/min': '/min',
  'breaths/minute': '/min',
  '/minute': '/min',
  'per min': '/min',
  'kg/m^2': 'kg/m2',
  'kg/m²': 'kg/m2',
  'l/min': 'L/min',
  'L/min': 'L/min',
  kgs: 'kg',
  mg_dL: 'mg/dL',
};
const ALIASES_LOWER = new Map(Object.entries(ALIASES).map(([k, v]) => [k.toLowerCase(), v]));

/** UCUM codes met in vitals and common labs, accepted without parsing. */
const KNOWN_UCUM = new Set([
  'kg',
  'g',
  'mg',
  'ug',
  'cm',
  'mm',
  'm',
  '%',
  'Cel',
  '[degF]',
  '[lb_av]',
  '[oz_av]',
  '[in_i]',
  '[ft_i]',
  'mm[Hg]',
  '/min',
  'kg/m2',
  'L/min',
  'mg/dL',
  'g/dL',
  'mmol/L',
  'umol/L',
  'meq/L',
  'mEq/L',
  'U/L',
  '[IU]/L',
  '10*3/uL',
  '10*6/uL',
  'fL',
  'pg',
  '{copies}/mL',
  '1',
  's',
  'h',
  'd',
  'a',
  'mo',
  'wk',
  'cm[H2O]',
  'L',
  'mL',
  'ng/mL',
  'pg/mL',
  'mm/h',
  '/uL',
  '/mm3',
]);

// A conservative UCUM grammar: products/quotients of (prefix)atom(exponent) terms, annotations and
// 10*n factors, over a fixed list of atoms common in clinical data. Anything else is not claimed
// as UCUM (its text stays in `unit`).
const PREFIXES = '(?:da|[YZEPTGMkhdcmunpfazy])';
const ATOMS = [
  'g',
  'm',
  'L',
  'l',
  's',
  'min',
  'h',
  'd',
  'wk',
  'mo',
  'a',
  'mol',
  'eq',
  'Eq',
  'U',
  '\\[IU\\]',
  '\\[iU\\]',
  'Cel',
  'K',
  'Pa',
  'bar',
  'kat',
  'osm',
  'Osm',
  '\\[degF\\]',
  '\\[lb_av\\]',
  '\\[oz_av\\]',
  '\\[in_i\\]',
  '\\[ft_i\\]',
  'm\\[Hg\\]',
  'm\\[H2O\\]',
  '\\[pH\\]',
  'cal',
  'J',
  'W',
  'V',
  'Hz',
  'dB',
  '\\[drp\\]',
  "\\[arb'U\\]",
  '\\[CFU\\]',
].join('|');
const TERM = `(?:(?:${PREFIXES}?(?:${ATOMS})|10\\*[+-]?\\d+|10\\^[+-]?\\d+|\\d+)(?:[+-]?\\d+)?(?:\\{[^{}]*\\})?|\\{[^{}]*\\})`;
const UCUM_SYNTAX = new RegExp(`^(?:/?${TERM})(?:[./]${TERM})*$|^%$`);

/** The UCUM code a unit string stands for, or undefined when it is not (safely) UCUM. */
export function toUcum(unit: string): string | undefined {
  const trimmed = unit.trim();
  if (!trimmed) return undefined;
  // A Map, not the object: "constructor" or "toString" must not find Object.prototype's members.
  const alias = ALIASES_LOWER.get(trimmed.toLowerCase());
  if (alias) return alias;
  if (KNOWN_UCUM.has(trimmed)) return trimmed;
  // A whitespace-free string that parses with the conservative grammar.
  if (trimmed.length <= 40 && UCUM_SYNTAX.test(trimmed)) return trimmed;
  return undefined;
}

/**
 * Normalises a Quantity's unit: a recognised unit is sent as a UCUM code (unit text kept as the
 * source wrote it, or the code when it had none); a unit that is not UCUM moves to `unit` only,
 * never claimed as UCUM. Quantities coded in another unit system are left alone. Returns the
 * input object when nothing changes.
 */
export function normaliseQuantity(q: Quantity): Quantity {
  const system = q.system;
  if (system !== undefined && system !== UCUM) return q;
  const source = q.code ?? q.unit;
  if (source === undefined) {
    if (system === undefined) return q;
    // A system without a code says nothing.
    const { system: _s, ...rest } = q;
    return rest;
  }
  const ucum = toUcum(source);
  if (ucum !== undefined) {
    if (q.code === ucum && q.system === UCUM && q.unit !== undefined) return q;
    return rebuild(q, q.unit ?? ucum, ucum);
  }
  return rebuild(q, q.unit ?? source, undefined);
}

/** A copy with unit/system/code replaced, keeping every other property in its place. */
function rebuild(q: Quantity, unit: string, code: string | undefined): Quantity {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(q)) {
    if (k === 'unit' || k === 'system' || k === 'code') continue;
    out[k] = v;
  }
  out.unit = unit;
  if (code !== undefined) {
    out.system = UCUM;
    out.code = code;
  }
  return out as Quantity;
}
