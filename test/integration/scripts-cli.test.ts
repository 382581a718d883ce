import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writePrivateFile } from '../../src/cli/private-file';

/**
 * Every script a newcomer runs answers --help with its usage (exit 0) and an unknown option with one
 * line (exit 64), never a stack trace and never starting anything. Run from the TypeScript sources
 * through a transpile hook, as the npm scripts run them from dist/.
 */
jest.setTimeout(120_000);

const ROOT = path.resolve(__dirname, '..', '..');
const CACHE = fs.mkdtempSync(path.join(os.tmpdir(), 'fhirsync-ts-'));
// Each run transpiles what it loads once; the cache (per test file) spares the later runs that work.
const HOOK = `
const fs = require('fs');
const path = require('path');
let ts;
require.extensions['.ts'] = (module, filename) => {
  const cached = path.join(process.env.TS_CACHE, filename.replace(/[\\/:]/g, '_') + '.js');
  let out;
  try { out = fs.readFileSync(cached, 'utf8'); } catch {
    ts ??= require('typescript');
    out = ts.transpileModule(fs.readFileSync(filename, 'utf8'), { fileName: filename,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } }).outputText;
    fs.writeFileSync(cached, out);
  }
  module._compile(out, filename);
};
process.argv = [process.argv[0], process.env.SCRIPT, ...JSON.parse(process.env.SCRIPT_ARGS)];
const loaded = require(process.env.SCRIPT);
// The sync CLI runs main only as the entry module; here it is required, so start it as node would.
if (process.env.SCRIPT.endsWith('sync-cli.ts')) loaded.main(process.argv.slice(2)).then((code) => process.exit(code));
`;

function run(script: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['-e', HOOK], {
    cwd: ROOT,
    env: { ...process.env, SCRIPT: path.join(ROOT, script), SCRIPT_ARGS: JSON.stringify(args), TS_CACHE: CACHE },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const SCRIPTS: Array<[string, string]> = [
  ['npm run stack', 'stack/cli.ts'],
  ['npm run stack:token', 'stack/token-cli.ts'],
  ['npm run demo', 'scripts/demo.ts'],
  ['npm run sync', 'src/cli/sync-cli.ts'],
  ['npm run openemr:register', 'scripts/openemr-register.ts'],
  ['npm run profiles:extract', 'scripts/extract-validation-profiles.ts'],
  ['npm run bench', 'scripts/bench/bench.ts'],
];

describe.each(SCRIPTS)('%s', (command, script) => {
  test('--help prints the usage and exits 0', () => {
    const { code, stdout, stderr } = run(script, ['--help']);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout).toMatch(new RegExp(`^Usage: ${command.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  });

  test('an unknown option is one line and exit 64, no stack trace', () => {
    const { code, stdout, stderr } = run(script, ['--bogus']);
    expect(code).toBe(64);
    expect(stdout).toBe('');
    expect(stderr).toBe("Unknown option '--bogus'. Run with --help for the options.\n");
  });
});

test('a bad bench option value is one line and exit 64, before anything starts', () => {
  for (const [args, line] of [
    [['--observations', 'many'], 'Option --observations must be a non-negative number.'],
    [['--cpus', 'half'], 'Option --cpus must be split or shared.'],
    [['--set', 'novalue'], 'Option --set wants KEY=VALUE.'],
  ] as const) {
    const { code, stdout, stderr } = run('scripts/bench/bench.ts', [...args]);
    expect({ code, stdout, stderr }).toEqual({ code: 64, stdout: '', stderr: `${line} Run with --help for the options.\n` });
  }
});

test('key files are written readable by their owner only, even over a wider file or a planted link', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhirsync-key-'));
  const file = path.join(dir, 'private-key.pem');
  fs.writeFileSync(file, 'old', { mode: 0o644 });
  writePrivateFile(file, 'secret');
  expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  const elsewhere = path.join(dir, 'elsewhere');
  fs.writeFileSync(elsewhere, 'x', { mode: 0o644 });
  fs.rmSync(file);
  fs.symlinkSync(elsewhere, file);
  writePrivateFile(file, 'secret');
  expect(fs.lstatSync(file).isSymbolicLink()).toBe(false);
  expect(fs.readFileSync(elsewhere, 'utf8')).toBe('x');
  // The scripts that write keys go through it.
  for (const script of ['scripts/openemr-register.ts', 'stack/cli.ts'])
    expect(fs.readFileSync(path.join(ROOT, script), 'utf8')).toMatch(/writePrivateFile\(/);
});
