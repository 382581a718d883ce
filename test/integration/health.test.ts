import { healthHandler } from '../../functions/health';
import { syncPatientHandler } from '../../functions/sync-patient';
import { checkSettingsAtStartup } from '../../functions/shared/runtime';
import { startStack, type Stack } from '../../stack';
import { invoke, useStack } from '../helpers/functions';
import { trimSource } from '../helpers/incremental-stack';

jest.setTimeout(120_000);

let stack: Stack;
const health = () => invoke(healthHandler, { method: 'GET', url: 'health' });
const failing = (json: any) => json.checks.filter((c: { ok: boolean }) => !c.ok);

beforeAll(async () => {
  stack = await startStack({ azurite: true });
  trimSource(stack, 50);
});
afterAll(() => stack?.close());
beforeEach(() => useStack(stack, { SYNC_TABLE_PREFIX: 'health', RETRY_MAX_ATTEMPTS: '1' }));

test('GET /api/health: settings, storage, OpenEMR and its token, the Entra token and the FHIR role all pass; nothing of a patient in the answer', async () => {
  const answer = await health();
  expect(answer.status).toBe(200);
  expect(answer.json.status).toBe('ok');
  expect(answer.json.checks.map((c: { name: string; ok: boolean }) => `${c.name}:${c.ok}`)).toEqual([
    'settings:true',
    'storage:true',
    'openemr:true',
    'openemr-token:true',
    'entra-token:true',
    'fhir-access:true',
  ]);
  for (const id of stack.openemr.store.ids('Patient')) expect(answer.body).not.toContain(id);
  expect(answer.body).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/);
});

test('a wrong AHDS secret, audience or URL is named as such, with the setting to fix', async () => {
  useStack(stack, { SYNC_TABLE_PREFIX: 'health', RETRY_MAX_ATTEMPTS: '1', AZURE_CLIENT_SECRET: 'not-the-secret' });
  let answer = await health();
  expect(answer.status).toBe(503);
  expect(failing(answer.json)).toEqual([
    expect.objectContaining({
      name: 'entra-token',
      setting: 'AZURE_CLIENT_SECRET',
      message: expect.stringMatching(/refused the client secret/),
    }),
  ]);
  expect(answer.body).not.toContain('not-the-secret');

  useStack(stack, {
    SYNC_TABLE_PREFIX: 'health',
    RETRY_MAX_ATTEMPTS: '1',
    AHDS_AUDIENCE: 'https://someone-else.fhir.azurehealthcareapis.com',
  });
  answer = await health();
  expect(answer.status).toBe(503);
  expect(failing(answer.json)).toEqual([
    expect.objectContaining({ name: 'fhir-access', setting: 'AHDS_AUDIENCE', message: expect.stringMatching(/refused the token \(401\)/) }),
  ]);

  useStack(stack, { SYNC_TABLE_PREFIX: 'health', RETRY_MAX_ATTEMPTS: '1', AHDS_FHIR_URL: 'http://127.0.0.1:9/fhir' });
  answer = await health();
  expect(failing(answer.json)).toEqual([expect.objectContaining({ name: 'fhir-access', setting: 'AHDS_FHIR_URL' })]);
});

test('an app whose Key Vault reference is not resolved starts, answers every call "Not configured: set X", and health says so', async () => {
  const reference = '@Microsoft.KeyVault(SecretUri=https://kv-fhirsync.vault.azure.net/secrets/openemr-private-key/)';
  useStack(stack, { OPENEMR_PRIVATE_KEY: reference });
  // In the Functions host the check at load logs the sentence and lets every function load.
  process.env.FUNCTIONS_WORKER_RUNTIME = 'node';
  const errors: string[] = [];
  const spy = jest.spyOn(console, 'error').mockImplementation((line: string) => void errors.push(line));
  try {
    expect(checkSettingsAtStartup()).toBeUndefined();
  } finally {
    spy.mockRestore();
    delete process.env.FUNCTIONS_WORKER_RUNTIME;
  }
  expect(errors.join('\n')).toMatch(
    /^Not configured: set OPENEMR_PRIVATE_KEY\. Setting OPENEMR_PRIVATE_KEY is a Key Vault reference that was not resolved \(secret openemr-private-key\)/,
  );

  const id = stack.openemr.store.ids('Patient')[0]!;
  const call = await invoke(syncPatientHandler, { url: `sync/patients/${id}`, params: { id } });
  expect(call.status).toBe(503);
  expect(call.json).toMatchObject({
    resourceType: 'OperationOutcome',
    issue: [{ diagnostics: expect.stringMatching(/^Not configured: set OPENEMR_PRIVATE_KEY\. .*Key Vault Secrets User/) }],
  });

  const answer = await health();
  expect(answer.status).toBe(503);
  expect(answer.json).toMatchObject({
    status: 'not-configured',
    checks: [{ name: 'settings', ok: false, setting: 'OPENEMR_PRIVATE_KEY' }],
  });
});
