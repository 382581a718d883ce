import { clearConnectorSettings } from './functions';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

/**
 * Runs the sync CLI in a child process straight from the TypeScript sources: a require hook
 * transpiles each .ts file with TypeScript's transpileModule (no type check, no dist/ build), so a
 * test can start, SIGKILL and restart the real CLI in a second or two.
 */
const HOOK = `
const ts = require('typescript');
const fs = require('fs');
require.extensions['.ts'] = (module, filename) => {
  const out = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
    fileName: filename,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true, sourceMap: false },
  }).outputText;
  module._compile(out, filename);
};
const { main } = require('./src/cli/sync-cli.ts');
main(JSON.parse(process.env.SYNC_CLI_ARGS || '[]')).then((code) => process.exit(code), (e) => { console.error(e); process.exit(1); });
`;

export interface CliChild {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * viaLocalCa: start it the way `npm run sync` does, through scripts/with-local-ca.js, with no
 * certificate trust inherited from the test runner (NODE_EXTRA_CA_CERTS removed); false: no trust
 * at all. Undefined: the runner's environment as it is.
 */
export function startCliChild(env: Record<string, string>, args: string[] = [], options: { viaLocalCa?: boolean } = {}): CliChild {
  const base = clearConnectorSettings({ ...process.env });
  if (options.viaLocalCa !== undefined) delete base.NODE_EXTRA_CA_CERTS;
  const argv = options.viaLocalCa ? [path.join(ROOT, 'scripts', 'with-local-ca.js'), process.execPath, '-e', HOOK] : ['-e', HOOK];
  const child = spawn(process.execPath, argv, {
    cwd: ROOT,
    env: { ...base, ...env, SYNC_CLI_ARGS: JSON.stringify(args) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => output, exited };
}
