import fs from 'node:fs';
import path from 'node:path';

/**
 * Finds the repository root by walking up to the directory holding package.json.
 * This file runs from `stack/openemr/` under ts-jest and from `dist/stack/openemr/` after tsc,
 * so a fixed number of `..` would be wrong in one of the two.
 */
export function findRepoRoot(start: string = __dirname): string {
  let dir = path.resolve(start);
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`No package.json above ${start}`);
    dir = parent;
  }
}

/** The Practitioners, Organizations and Locations of the synthea-dev data, OpenEMR-shaped (data/openemr-directory). */
export function defaultDirectoryDir(): string {
  return path.resolve(findRepoRoot(), 'data', 'openemr-directory');
}

/** The default data set: the synthea-dev NDJSON shipped in the repository's data/ (or $OPENEMR_STANDIN_DATA). */
export function defaultDataDir(): string {
  const fromEnv = process.env.OPENEMR_STANDIN_DATA;
  if (fromEnv) return path.resolve(fromEnv);
  return sampleDataDir();
}

/** The sample data's own folder, data/synthea-dev (whatever $OPENEMR_STANDIN_DATA says). */
export function sampleDataDir(): string {
  return path.resolve(findRepoRoot(), 'data', 'synthea-dev');
}

/**
 * The directory served beside a data folder by default: data/openemr-directory beside the sample
 * data (its links.json names the sample Encounters' conditional references), none beside other data.
 */
export function defaultDirectoryFor(dataDir: string | null): string | null {
  return dataDir !== null && path.resolve(dataDir) === sampleDataDir() ? defaultDirectoryDir() : null;
}
