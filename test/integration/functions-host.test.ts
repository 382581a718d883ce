import { startFunctionsHost } from '../../stack/functions-host';

test('the local Functions host serves the real registrations and survives a malformed request', async () => {
  const host = await startFunctionsHost();
  try {
    const bad = await fetch(`${host.url}/sync/patients/%`, { method: 'POST' });
    expect(bad.status).toBe(404);
    const invalid = await fetch(`${host.url}/sync/patients/not%20an%20id`, { method: 'POST' });
    expect(invalid.status).toBe(400);
    expect(await invalid.json()).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'invalid' }] });
  } finally {
    await host.close();
  }
});
