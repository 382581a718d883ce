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
  return path.resolve(findRepoRoot(), 'data', 'synthea-dev');
}
