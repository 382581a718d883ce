/**
 * `npm run data:allergies`: writes data/synthea-dev/AllergyIntolerance.ndjson, an OpenEMR-shaped
 * AllergyIntolerance sample for the Synthea Patients (which come without allergies), from
 * stack/openemr/services/allergy-sample.ts. A unit test fails when the file and the generator differ.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { commandLine } from '../src/cli/args';
import { allergySampleNdjson } from '../stack/openemr/services/allergy-sample';
import { findRepoRoot } from '../stack/openemr/repo-paths';

const USAGE = `Usage: npm run data:allergies

Rewrites data/synthea-dev/AllergyIntolerance.ndjson from data/synthea-dev/Patient.ndjson.
  --help   this text`;
const parsed = commandLine(process.argv.slice(2), {}, USAGE);
if (typeof parsed === 'number') process.exit(parsed);

const dir = join(findRepoRoot(), 'data', 'synthea-dev');
const text = allergySampleNdjson(readFileSync(join(dir, 'Patient.ndjson'), 'utf8'));
writeFileSync(join(dir, 'AllergyIntolerance.ndjson'), text);
process.stdout.write(`wrote ${join(dir, 'AllergyIntolerance.ndjson')}: ${text.split('\n').filter(Boolean).length} resources\n`);
