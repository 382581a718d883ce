/**
 * data/openemr-directory is what scripts/openemr-directory.ts builds from data/synthea-dev (the
 * same input always gives the same files), and every Synthea conditional reference of the
 * Encounters is linked to a served row.
 */
import fs from 'node:fs';
import path from 'node:path';
import { directoryFiles } from '../../scripts/openemr-directory';

const ROOT = path.resolve(__dirname, '../..');

test('the stored directory equals what the script builds from the Synthea data', () => {
  const built = directoryFiles(path.join(ROOT, 'data', 'synthea-dev'));
  for (const [name, text] of Object.entries(built))
    expect(fs.readFileSync(path.join(ROOT, 'data', 'openemr-directory', name), 'utf8')).toBe(text);
});

test('every Practitioner, Organization and Location reference of the Synthea Encounters is linked to a row of the directory', () => {
  const links = JSON.parse(fs.readFileSync(path.join(ROOT, 'data', 'openemr-directory', 'links.json'), 'utf8')) as Record<string, string>;
  const ids = new Set(
    ['Practitioner', 'Organization', 'Location'].flatMap((type) =>
      fs
        .readFileSync(path.join(ROOT, 'data', 'openemr-directory', `${type}.ndjson`), 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => `${type}/${(JSON.parse(l) as { id: string }).id}`),
    ),
  );
  const encounters = fs.readFileSync(path.join(ROOT, 'data', 'synthea-dev', 'Encounter.ndjson'), 'utf8');
  const conditional = new Set([...encounters.matchAll(/"reference":"((?:Practitioner|Organization|Location)\?[^"]+)"/g)].map((m) => m[1]!));
  expect(conditional.size).toBeGreaterThan(0);
  for (const ref of conditional) expect(ids.has(links[ref] ?? `unlinked ${ref}`)).toBe(true);
});
