import { Deidentifier } from '../../src/mapping/deid';

/**
 * An audit of a de-identified target against its source, written from the outside (it shares no
 * code with src/mapping/deid-resource.ts but the keyed hash the key defines): what identifying
 * value of the source shows up in what was written, which written id is not a keyed hash of a
 * source id, which reference names nothing that was written, and whether every date of a patient
 * moved by one and the same number of days (so every interval within the record is kept), and
 * whether ages over 89 are one category (Safe Harbor: every birth date of a person 90 or older is
 * the same value, which itself says 90 or older).
 */
type Json = Record<string, any>;

export interface DeidAudit {
  /** "Type/id: what" for each identifying source value found in a written resource. */
  leaks: string[];
  /** Written resources whose id is not the keyed hash of a source id of their type. */
  unhashedIds: string[];
  /** "Type/id -> reference" for each reference naming no written resource. */
  unresolved: string[];
  /** Dates not moved by their patient's one shift, or lost/added at a path. */
  badDates: string[];
  /**
   * Birth dates that break "ages over 89 are one category": a person 90 or older (by the source) whose
   * written birth date is not the category, a written birth date saying 90 or older that is not the
   * one category value, or a person well under 90 put in it.
   */
  ages: string[];
  /** Days each source Patient's dates moved by (source Patient id -> days). */
  shifts: Map<string, number>;
  /** Identifying values looked for (besides ids), date pairs compared, references followed. */
  counts: { values: number; ids: number; dates: number; references: number; ninetyOrOlder: number };
  /** Distinct references ("Type/id") of the written resources. */
  references: string[];
}

const UUID = /[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/;
const DATE = /^\d{4}-\d{2}-\d{2}(T.*)?$/;
const DAY = 86_400_000;
const daysBetween = (a: string, b: string) => Math.round((Date.parse(b.slice(0, 10)) - Date.parse(a.slice(0, 10))) / DAY);

export function auditDeidentified(options: {
  source: Json[];
  written: Json[];
  key: string;
  /** When ages are reckoned (default: now). */
  at?: number;
}): DeidAudit {
  const { source, written } = options;
  const at = options.at ?? Date.now();
  const deid = new Deidentifier(options.key);
  const values = new Map<string, string>();
  const ids = new Set<string>();
  for (const r of source) collectIdentifying(r, '', values, ids);
  // Short values ("MA", "US", "Mr.") say nothing alone and would match everywhere; values holding a
  // UUID are found by the UUID check below. As they stand in JSON text.
  // A narrative that only repeats a code's display or text (OpenEMR's AllergyIntolerance narrative is
  // its title, "Latex" beside the display "Latex (substance)") says what the kept coded content says: not a leak.
  const coded = codedTerms(source);
  const needles = [...values]
    .filter(([v]) => v.length >= 4 && !UUID.test(v))
    .filter(([v, kind]) => !(kind === "a narrative's text" && [...coded].some((t) => t.includes(v.toLowerCase()))))
    .map(([v, kind]) => ({ text: JSON.stringify(v).slice(1, -1), kind }));

  const leaks: string[] = [];
  const texts = written.map((r) => JSON.stringify(r));
  // One pass over everything per value; resources are searched only for the values found at all.
  const all = texts.join('\n');
  const found = needles.filter((v) => all.includes(v.text));
  written.forEach((r, i) => {
    const at = `${r.resourceType}/${r.id}`;
    const json = texts[i]!;
    for (const v of found) if (containsWord(json, v.text)) leaks.push(`${at}: ${v.kind} of the source`);
    if (UUID.test(json)) leaks.push(`${at}: a UUID (the source's ids are UUIDs)`);
    for (const token of stringsOf(r).flatMap((s) => s.split(/[/:|#?=&\s]+/))) if (ids.has(token)) leaks.push(`${at}: a source id`);
  });

  // Written id -> its source resource, by the keyed hash.
  const sourceOf = new Map<string, Json>();
  for (const r of source) sourceOf.set(`${r.resourceType}/${deid.pseudonymId(r.resourceType, r.id)}`, r);
  const unhashedIds = written
    .filter((r) => !/^[a-f0-9]{32}$/.test(r.id) || !sourceOf.has(`${r.resourceType}/${r.id}`))
    .map((r) => `${r.resourceType}/${r.id}`);

  const held = new Set(written.map((r) => `${r.resourceType}/${r.id}`));
  const unresolved: string[] = [];
  const references = new Set<string>();
  for (const r of written)
    for (const ref of referencesOf(r)) {
      references.add(ref);
      if (!held.has(ref)) unresolved.push(`${r.resourceType}/${r.id} -> ${ref}`);
    }

  // Ages over 89: one category, the same written birth date for everyone 90 or older.
  const ages: string[] = [];
  const categories = new Set<string>();
  let ninetyOrOlder = 0;
  for (const r of written) {
    const src = sourceOf.get(`${r.resourceType}/${r.id}`);
    if (typeof r.birthDate !== 'string' || typeof src?.birthDate !== 'string') continue;
    const at90 = yearsAt(r.birthDate, at) >= 90;
    if (yearsAt(src.birthDate, at) >= 90) {
      ninetyOrOlder++;
      if (!at90) ages.push(`${r.resourceType}/${r.id}: 90 or older at the source, the birth date written says less`);
    } else if (at90 && yearsAt(src.birthDate, at) < 89.5)
      // Only a shift (at most 180 days) may move someone of 89 into the category.
      ages.push(`${r.resourceType}/${r.id}: under 89.5 at the source, put among the 90 or older`);
    if (at90) {
      categories.add(r.birthDate);
      if (!/^\d{4}$/.test(r.birthDate)) ages.push(`${r.resourceType}/${r.id}: a birth date of someone 90 or older written to the day`);
      if (r._birthDate !== undefined) ages.push(`${r.resourceType}/${r.id}: the birth time of someone 90 or older kept`);
    }
  }
  if (categories.size > 1) ages.push(`${categories.size} different birth dates for the 90 or older: ${[...categories].join(', ')}`);
  const grouped = (r: Json) => typeof r.birthDate === 'string' && categories.has(r.birthDate);

  // Dates: each written date against the source's at the same path; one shift per patient.
  const shifts = new Map<string, number>();
  const badDates: string[] = [];
  let dates = 0;
  for (const r of written) {
    const src = sourceOf.get(`${r.resourceType}/${r.id}`);
    if (!src) continue;
    const patient = patientOf(src);
    const before = datesByPath(src);
    const after = datesByPath(r);
    for (const [path, outs] of after) {
      const ins = before.get(path) ?? [];
      if (ins.length !== outs.length) {
        badDates.push(`${r.resourceType}.${path}: ${ins.length} dates in the source, ${outs.length} written`);
        continue;
      }
      outs.forEach((out, i) => {
        const delta = daysBetween(ins[i]!, out);
        dates++;
        if (out.slice(10) !== ins[i]!.slice(10)) badDates.push(`${r.resourceType}.${path}: time of day or offset changed`);
        if (delta === 0) badDates.push(`${r.resourceType}.${path}: not shifted`);
        if (patient === undefined) return;
        const known = shifts.get(patient);
        if (known === undefined) shifts.set(patient, delta);
        else if (known !== delta) badDates.push(`${r.resourceType}.${path}: moved ${delta} days, its patient's other dates ${known}`);
      });
    }
    for (const path of before.keys())
      if (!after.has(path) && !droppedOnPurpose(path) && !(grouped(r) && /^_?birthDate(\.|$)/.test(path)))
        badDates.push(`${r.resourceType}.${path}: a date was lost`);
  }

  return {
    leaks: [...new Set(leaks)],
    unhashedIds,
    unresolved,
    badDates,
    ages,
    shifts,
    counts: { values: needles.length, ids: ids.size, dates, references: references.size, ninetyOrOlder },
    references: [...references].sort(),
  };
}

/** Free text, names, contact points, identifiers, addresses and every id of a source resource. */
/** What a clean de-identified target gives: nothing found, every patient's dates seen. */
export function expectClean(audit: DeidAudit, counts: { patients: number; written: number }): void {
  expect(audit.leaks).toEqual([]);
  expect(audit.unhashedIds).toEqual([]);
  expect(audit.unresolved).toEqual([]);
  expect(audit.badDates).toEqual([]);
  expect(audit.ages).toEqual([]);
  expect(audit.shifts.size).toBe(counts.patients);
  expect(audit.counts.dates).toBeGreaterThan(counts.written);
  expect(audit.references.length).toBeGreaterThan(counts.patients);
}

/** Every Coding.display and CodeableConcept.text of the sources, lower-cased: kept by the de-id policy. */
function codedTerms(node: unknown, into: Set<string> = new Set()): Set<string> {
  if (Array.isArray(node)) for (const item of node) codedTerms(item, into);
  else if (node && typeof node === 'object') {
    const o = node as Json;
    if (Array.isArray(o.coding)) {
      if (typeof o.text === 'string') into.add(o.text.toLowerCase());
      for (const c of o.coding) if (typeof c?.display === 'string') into.add(c.display.toLowerCase());
    }
    for (const v of Object.values(o)) if (v && typeof v === 'object') codedTerms(v, into);
  }
  return into;
}

function collectIdentifying(node: unknown, key: string, values: Map<string, string>, ids: Set<string>): void {
  if (Array.isArray(node)) {
    for (const item of node) collectIdentifying(item, key, values, ids);
    return;
  }
  if (!node || typeof node !== 'object') return;
  const o = node as Json;
  if (typeof o.resourceType === 'string' && typeof o.id === 'string') ids.add(o.id);
  const add = (v: unknown, kind: string) => {
    for (const s of Array.isArray(v) ? v : [v]) if (typeof s === 'string' && s.trim() && !values.has(s)) values.set(s, kind);
  };
  if (typeof o.reference === 'string') {
    const id = o.reference.split(/[/:]/).pop();
    if (id) ids.add(id);
    add(o.display, 'a reference display');
  }
  if (key === 'identifier' || key === 'valueIdentifier') add(o.value, 'an identifier value');
  if (key === 'name' || key === 'valueHumanName') [o.family, o.given, o.text].forEach((v) => add(v, 'a name'));
  if (key === 'telecom' || key === 'valueContactPoint') add(o.value, 'a telecom value');
  if (key === 'address' || key === 'valueAddress')
    [o.line, o.city, o.district, o.postalCode, o.text].forEach((v) => add(v, 'an address part'));
  if (key === 'text' && typeof o.div === 'string') {
    add(o.div, 'a narrative');
    add(
      o.div
        .replace(/<[^>]*>/g, ' ')
        .replace(/\s+/g, ' ')
        .trim(),
      "a narrative's text",
    );
  }
  if (key === 'note') [o.text, o.authorString].forEach((v) => add(v, 'a note'));
  if (typeof o.url === 'string' && o.url.endsWith('patient-mothersMaidenName')) add(o.valueString, "a mother's maiden name");
  for (const k of ['description', 'comment', 'conclusion']) add(o[k], 'free text');
  if (typeof o.data === 'string') add(o.data, 'an attachment');
  for (const [k, v] of Object.entries(o)) if (v && typeof v === 'object') collectIdentifying(v, k, values, ids);
}

/**
 * Whether `text` holds `word` standing alone: not inside a longer run of letters and digits (a
 * 5-digit postal code turns up inside 32-hex hashes by chance, as any short number would).
 */
function containsWord(text: string, word: string): boolean {
  const alnum = /[A-Za-z0-9]/;
  for (let i = text.indexOf(word); i !== -1; i = text.indexOf(word, i + 1)) {
    const before = text[i - 1];
    const after = text[i + word.length];
    const openStart = !alnum.test(word[0]!) || before === undefined || !alnum.test(before);
    const openEnd = !alnum.test(word[word.length - 1]!) || after === undefined || !alnum.test(after);
    if (openStart && openEnd) return true;
  }
  return false;
}

function stringsOf(node: unknown): string[] {
  if (typeof node === 'string') return [node];
  if (node && typeof node === 'object') return Object.values(node).flatMap(stringsOf);
  return [];
}

function referencesOf(node: unknown): string[] {
  if (Array.isArray(node)) return node.flatMap(referencesOf);
  if (!node || typeof node !== 'object') return [];
  const o = node as Json;
  const own = typeof o.reference === 'string' ? [o.reference as string] : [];
  return [...own, ...Object.values(o).flatMap(referencesOf)];
}

/** Age in years at `at` (ms) of a person born on a FHIR date, from the earliest day it allows (a year alone: 1 January). */
function yearsAt(birthDate: string, at: number): number {
  const [y, m = '01', d = '01'] = birthDate.slice(0, 10).split('-');
  return (at - Date.parse(`${y}-${m}-${d}T00:00:00Z`)) / (365.2425 * DAY);
}

/** The source Patient id a source resource belongs to. */
function patientOf(r: Json): string | undefined {
  if (r.resourceType === 'Patient') return r.id;
  for (const k of ['subject', 'patient']) {
    const m = /^(?:Patient\/|urn:uuid:)(.+)$/.exec(r[k]?.reference ?? '');
    if (m) return m[1];
  }
  return undefined;
}

/** Every full date string of a resource, by path without indices (meta is the server's, not the source's). */
function datesByPath(r: Json): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const walk = (v: unknown, path: string) => {
    if (typeof v === 'string') {
      if (DATE.test(v)) out.set(path, [...(out.get(path) ?? []), v]);
    } else if (Array.isArray(v)) v.forEach((x) => walk(x, path));
    else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) if (path !== '' || k !== 'meta') walk(x, path ? `${path}.${k}` : k);
  };
  walk(r, '');
  return out;
}

/** Dates that go with the element holding them (narrative, notes, attachments' documents). */
function droppedOnPurpose(path: string): boolean {
  return /^(text|note|contained|identifier)(\.|$)/.test(path);
}
