import { OperationOutcomeError, validateResource } from '@medplum/core';
import type { Observation, Resource } from '@medplum/fhirtypes';
import { createResourceMapper } from '../../src/mapping';
import { passesFastCheck } from '../../src/mapping/fast-validation';
import { ensureDefinitionsIndexed } from '../../src/mapping/validate';
import { DEFAULT_OPTIONS, openemrExample, sampleObservations, samplePatients } from '../fixtures/mapping/load';

type Json = Record<string, unknown>;
type Path = Array<string | number>;

beforeAll(() => ensureDefinitionsIndexed('connector'));

/** Medplum's verdict: no error issue. */
function medplumAccepts(resource: Resource): boolean {
  try {
    validateResource(resource);
    return true;
  } catch (err) {
    if (err instanceof OperationOutcomeError) return false;
    return false; // the validator tripping over the input is no acceptance either
  }
}

/** Observations of distinct shapes (top-level keys, value type, components), so each kind is covered. */
function distinctObservations(limit: number): Observation[] {
  const seen = new Set<string>();
  const out: Observation[] = [];
  for (const o of sampleObservations()) {
    const shape = `${Object.keys(o).sort().join(',')}|${o.code?.coding?.[0]?.code}|${o.component?.length ?? 0}`;
    if (seen.has(shape)) continue;
    seen.add(shape);
    out.push(o);
    if (out.length === limit) break;
  }
  return out;
}

/** What the connector writes (the mapper's output) and what it reads (the source), of several shapes. */
function baseResources(): Resource[] {
  const mapper = createResourceMapper(DEFAULT_OPTIONS);
  const examples = [
    openemrExample<Resource>('patient.swagger.json'),
    openemrExample<Resource>('patient-dataabsent.swagger.json'),
    openemrExample<Resource>('observation-vital-bp.swagger.json'),
  ];
  const sources: Resource[] = [samplePatients()[0]!, ...distinctObservations(8), ...examples];
  const mapped = sources.map((r) => mapper.map(r as Observation)).flatMap((m) => (m.ok ? [m.resource as Resource] : []));
  // Valid content the sample lacks, so those types are walked too (extensions carry ext-1, narrative txt-1/2).
  const obs = mapped.find((r) => r.resourceType === 'Observation') as unknown as Json;
  const extras: Resource[] = [
    { ...obs, note: [{ text: 'note' }], extension: [{ url: 'http://example.org/x', valueString: 'y' }], interpretation: [{ coding: [{ system: 'http://s', code: 'H' }] }] },
    { ...obs, referenceRange: [{ low: { value: 1, unit: 'mg', system: 'http://unitsofmeasure.org', code: 'mg' }, text: 'r' }], issued: '2020-01-01T00:00:00Z' },
    { ...obs, text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">x</div>' } },
  ] as unknown as Resource[];
  return [...mapped, ...examples, ...extras];
}

function pathsOf(value: unknown, path: Path = []): Path[] {
  const out: Path[] = path.length ? [path] : [];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...pathsOf(v, [...path, i])));
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) out.push(...pathsOf(v, [...path, k]));
  return out;
}

function parentOf(root: Json, path: Path): { parent: Json | unknown[]; key: string | number } {
  let parent: unknown = root;
  for (const step of path.slice(0, -1)) parent = (parent as Json)[step as string];
  return { parent: parent as Json, key: path[path.length - 1]! };
}

const REPLACEMENTS: unknown[] = [
  '', ' ', 'x', 'a  b', '1990-13-45', '2020-01-01T10:00:00', 'urn:uuid:ZZ', 'ctrl\u0001char', 'x'.repeat(70),
  0, -1, 1.5, true, null, {}, [], { foo: 1 }, ['x'], [null], { extension: [{ url: 'u', valueString: 's' }] },
];

/** Every way of breaking (or harmlessly changing) one spot: replace, delete, wrap, unwrap, rename, add siblings. */
function mutantsOf(base: Resource): Resource[] {
  const out: Resource[] = [];
  const mutate = (path: Path, change: (parent: Json | unknown[], key: string | number) => void): void => {
    const copy = structuredClone(base) as unknown as Json;
    const { parent, key } = parentOf(copy, path);
    change(parent, key);
    out.push(copy as unknown as Resource);
  };
  for (const path of pathsOf(base)) {
    for (const r of REPLACEMENTS) mutate(path, (p, k) => ((p as Json)[k as string] = structuredClone(r)));
    mutate(path, (p, k) => (Array.isArray(p) ? p.splice(k as number, 1) : delete (p as Json)[k as string]));
    mutate(path, (p, k) => ((p as Json)[k as string] = [(p as Json)[k as string]]));
    mutate(path, (p, k) => {
      const v = (p as Json)[k as string];
      if (Array.isArray(v)) (p as Json)[k as string] = v[0];
    });
    if (typeof path[path.length - 1] === 'string') {
      const key = path[path.length - 1] as string;
      mutate(path, (p) => ((p as Json)[`_${key}`] = { extension: [{ url: 'u', valueString: 's' }] }));
      mutate(path, (p) => ((p as Json)[`${key}X`] = (p as Json)[key]));
      mutate(path, (p) => ((p as Json).resourceType = 'Observation'));
      for (const other of ['String', 'Quantity', 'Boolean', 'Integer', 'DateTime', 'Period', 'CodeableConcept']) {
        const stem = key.match(/^(value|effective|deceased|multipleBirth)[A-Z]/)?.[1];
        if (stem) {
          mutate(path, (p) => ((p as Json)[`${stem}${other}`] = (p as Json)[key])); // a second form, same content
          mutate(path, (p, k) => {
            (p as Json)[`${stem}${other}`] = (p as Json)[k as string];
            delete (p as Json)[k as string]; // the content under another type's name
          });
        }
      }
    }
  }
  const root = structuredClone(base) as unknown as Json;
  out.push({ ...root, contained: [{ resourceType: 'Encounter', id: 'e1', status: 'finished', class: { code: 'AMB' } }] } as unknown as Resource);
  out.push({ ...root, resourceType: 'Bogus' } as unknown as Resource);
  return out;
}

describe('fast validation: a quick "valid" that Medplum always agrees with', () => {
  const bases = baseResources();

  test('every resource the connector reads or writes in the sample passes it (so syncs skip the slow crawl)', () => {
    const all = [...samplePatients(), ...sampleObservations()];
    const mapper = createResourceMapper(DEFAULT_OPTIONS);
    const mapped = all.map((r) => mapper.map(r)).flatMap((m) => (m.ok ? [m.resource as Resource] : []));
    expect(mapped.length).toBe(all.length);
    expect(mapped.filter((r) => !passesFastCheck(r)).map((r) => `${r.resourceType}/${r.id}`)).toEqual([]);
    expect(bases.filter((r) => !passesFastCheck(r)).map((r) => `${r.resourceType}/${r.id}`)).toEqual([]);
    expect(bases.every(medplumAccepts)).toBe(true);
  });

  test('nothing it passes is refused by Medplum, across thousands of broken variants of real resources', () => {
    let passed = 0;
    let refusedByMedplum = 0;
    const disagreements: string[] = [];
    let total = 0;
    for (const base of bases) {
      for (const mutant of mutantsOf(base)) {
        total++;
        const medplum = medplumAccepts(mutant);
        if (!medplum) refusedByMedplum++;
        if (!passesFastCheck(mutant)) continue;
        passed++;
        if (!medplum) disagreements.push(JSON.stringify(mutant).slice(0, 300));
      }
    }
    expect(disagreements).toEqual([]);
    // The comparison has teeth: many variants are refused, and many harmless ones still pass quickly.
    expect(total).toBeGreaterThan(10_000);
    expect(refusedByMedplum).toBeGreaterThan(total / 4);
    expect(passed).toBeGreaterThan(total / 10);
  });
});
