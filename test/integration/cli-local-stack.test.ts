import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startStack, type Stack } from '../../stack';
import { startCliChild } from '../helpers/incremental-child';
import { trimSource } from '../helpers/incremental-stack';

/**
 * `npm run sync -- --settings .stack/local.settings.json` against the running local stack: the CLI
 * goes through scripts/with-local-ca.js (as the npm script does) and so trusts the stack's
 * certificate; without it, the failure names the untrusted Entra authority, not "AHDS".
 */
jest.setTimeout(180_000);

let stack: Stack;
let settingsFile: string;

beforeAll(async () => {
  stack = await startStack({ azurite: true });
  trimSource(stack, 100);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhirsync-cli-'));
  settingsFile = path.join(dir, 'local.settings.json');
  fs.writeFileSync(
    settingsFile,
    JSON.stringify({
      IsEncrypted: false,
      Values: { FUNCTIONS_WORKER_RUNTIME: 'node', ...stack.env, SYNC_TABLE_PREFIX: 'clistack', SYNC_LAG_SECONDS: '1' },
    }),
    { mode: 0o600 },
  );
});
afterAll(() => stack?.close());

test('the CLI started as npm run sync starts it trusts the local stack and syncs everything', async () => {
  const cli = startCliChild({}, ['--settings', settingsFile], { viaLocalCa: true });
  const { code } = await cli.exited;
  expect({ code, output: cli.output() }).toEqual({ code: 0, output: expect.stringMatching(/incrementalSync ok: read \d+, created \d+/) });
  expect((await stack.ahds.snapshot('Patient')).length).toBe(stack.openemr.store.count('Patient'));
});

test('without the local certificate trusted, the CLI says the Entra authority is not trusted, in one line naming the setting', async () => {
  const cli = startCliChild({}, ['--settings', settingsFile], { viaLocalCa: false });
  const { code } = await cli.exited;
  expect(code).toBe(1);
  expect(cli.output()).toMatch(
    /AHDS check failed \(AZURE_AUTHORITY_HOST\): Entra ID at https:\/\/127\.0\.0\.1:\d+ could not be reached or its TLS certificate is not trusted/,
  );
  expect(cli.output()).not.toMatch(/\n\s+at /);
  expect(cli.output()).not.toMatch(/run again when it is back/);
});
