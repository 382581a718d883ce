import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { CHECKED_SYSTEMS, LOINC } from './codes';

/** A coding a map adds next to the source coding. */
export interface TargetCoding {
  system: string;
  code: string;
  display?: string;
}

/** What the maps say about one source code of one system. */
export interface MapEntry {
  /** The map group's source system: the system the code really belongs to. */
  sourceSystem: string;
  /** Codings to add (empty when the maps know the code but assert no equivalent). */
  targets: TargetCoding[];
}

export interface ConceptMapIndex {
  /** Look-up by the coding's (real) system and code. */
  bySystemCode: Map<string, MapEntry>;
  /**
   * Look-up by code alone across the non-LOINC source groups, for codes mislabelled as LOINC or
   * SNOMED CT: the first source system in load order (shipped maps, then user files) that lists
   * the code wins.
   */
  byCodeNonStandard: Map<string, MapEntry>;
  /** url|version of every map loaded, in load order. */
  loaded: string[];
}

/** Equivalences that make a target usable as an added coding (R4 ConceptMapEquivalence). */
const USABLE = new Set(['relatedto', 'equivalent', 'equal', 'wider', 'subsumes', 'narrower', 'specializes', 'inexact']);
const ALL_EQUIVALENCES = [...USABLE, 'unmatched', 'disjoint'] as const;

const targetSchema = z.object({
  code: z.string().min(1).optional(),
  display: z.string().optional(),
  equivalence: z.enum(ALL_EQUIVALENCES),
  comment: z.string().optional(),
});

const conceptMapSchema = z.object({
  resourceType: z.literal('ConceptMap'),
  url: z.string().min(1),
  version: z.string().min(1).optional(),
  name: z.string().optional(),
  status: z.enum(['draft', 'active', 'retired', 'unknown']),
  group: z
    .array(
      z.object({
        source: z.string().min(1),
        target: z.string().min(1).optional(),
        element: z.array(
          z.object({
            code: z.string().min(1),
            display: z.string().optional(),
            target: z.array(targetSchema).optional(),
          }),
        ),
      }),
    )
    .min(1),
});

export type ConceptMapJson = z.infer<typeof conceptMapSchema>;

/** The shipped map directory: `mappings/` at the package root (the folder holding package.json). */
export function shippedMapsDir(start: string = __dirname): string {
  let dir = resolve(start);
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'mappings'))) return join(dir, 'mappings');
    const up = dirname(dir);
    if (up === dir) throw new Error('Shipped ConceptMaps not found: no mappings/ folder next to a package.json above the mapping module');
    dir = up;
  }
}

/** The shipped ConceptMap files (`mappings/*.conceptmap.json`), sorted by name so the order is fixed. */
export function shippedMapFiles(dir: string = shippedMapsDir()): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.conceptmap.json'))
    .sort()
    .map((f) => join(dir, f));
}

/** Reads and checks one ConceptMap file. Errors name the file and the rule, never file content. */
export function readConceptMap(file: string): ConceptMapJson {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : 'not readable JSON';
    throw new Error(`ConceptMap file ${file}: ${why}`);
  }
  const parsed = conceptMapSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`ConceptMap file ${file}: ${issue.path.join('.') || '(root)'} ${issue.message}`);
  }
  const map = parsed.data;
  // A map must never make the connector send a false code: every target in a checked system
  // (LOINC, SNOMED CT) has to pass that system's check.
  map.group.forEach((g, gi) => {
    const check = g.target ? CHECKED_SYSTEMS.get(g.target) : undefined;
    if (!check) return;
    g.element.forEach((e, ei) =>
      (e.target ?? []).forEach((t, ti) => {
        if (t.code && USABLE.has(t.equivalence) && !check(t.code)) {
          throw new Error(
            `ConceptMap file ${file}: group[${gi}].element[${ei}].target[${ti}].code is not a valid ${g.target} code (${t.code})`,
          );
        }
      }),
    );
  });
  return map;
}

/** Indexes maps in order: targets for the same source accumulate, duplicates are skipped. */
function indexConceptMaps(maps: ConceptMapJson[]): ConceptMapIndex {
  const bySystemCode = new Map<string, MapEntry>();
  const byCodeNonStandard = new Map<string, MapEntry>();
  const loaded: string[] = [];
  for (const map of maps) {
    loaded.push(map.version ? `${map.url}|${map.version}` : map.url);
    for (const group of map.group) {
      for (const element of group.element) {
        const key = `${group.source}|${element.code}`;
        let entry = bySystemCode.get(key);
        if (!entry) {
          entry = { sourceSystem: group.source, targets: [] };
          bySystemCode.set(key, entry);
        }
        if (group.source !== LOINC && !CHECKED_SYSTEMS.has(group.source) && !byCodeNonStandard.has(element.code)) {
          byCodeNonStandard.set(element.code, entry);
        }
        if (!group.target) continue;
        for (const t of element.target ?? []) {
          if (!t.code || !USABLE.has(t.equivalence)) continue;
          if (entry.targets.some((x) => x.system === group.target && x.code === t.code)) continue;
          entry.targets.push(
            t.display ? { system: group.target, code: t.code, display: t.display } : { system: group.target, code: t.code },
          );
        }
      }
    }
  }
  return { bySystemCode, byCodeNonStandard, loaded };
}

/** Shipped maps first (sorted by file name), then the user's files in the order given. */
export function loadConceptMaps(userFiles: string[], shippedDir?: string): ConceptMapIndex {
  const files = [...shippedMapFiles(shippedDir), ...userFiles];
  return indexConceptMaps(files.map(readConceptMap));
}
