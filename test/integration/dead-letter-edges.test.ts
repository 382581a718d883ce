import http from 'node:http';
import { syncPatientHandler } from '../../functions/sync-patient';
import { planBackfillHandler } from '../../functions/backfill-queue';
import { syncRunHandler } from '../../functions/sync-run';
import { listDeadLettersHandler } from '../../functions/dead-letters';
import { unmappedCodesHandler } from '../../functions/unmapped-codes';
import { loadConfig } from '../../src/config/load';
import { createConnector } from '../../src/connector';
import { MemoryDeadLetterStore } from '../../src/sync/dead-letters';
import { replayDeadLetters } from '../../src/sync/replay';
import { workDepsOf } from '../../src/sync/work-queue';
import { startStack, type Stack } from '../../stack';
import { invoke, useStack } from '../helpers/functions';

let stack: Stack;
let routeless: http.Server;
let routelessUrl: string;
beforeAll(async () => {
  stack = await startStack({ azurite: false, dataDir: null });
  // An OpenEMR whose FHIR API answers every route with OpenEMR's "Route not found" 404.
  routeless = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.method === 'POST' && req.url?.endsWith('/token')) {
      res.end(JSON.stringify({ token_type: 'Bearer', expires_in: 300, access_token: 'opaque' }));
      return;
    }
    res.statusCode = 404;
    res.end(JSON.stringify({ error: 'An error occurred', message: 'Route not found', code: 0 }));
  });
  await new Promise<void>((resolve) => routeless.listen(0, '127.0.0.1', resolve));
  routelessUrl = `http://127.0.0.1:${(routeless.address() as { port: number }).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => routeless.close(resolve));
  await stack?.close();
});

const letter = (resourceType: string, id: string) => ({
  resourceType,
  id,
  stage: 'write' as const,
  reason: 'x',
  attempts: 1,
  at: new Date(0).toISOString(),
  runId: 'r',
  operation: 'test',
});

async function connectorWith(deadLetters: MemoryDeadLetterStore, settings: Record<string, string> = {}) {
  return createConnector(loadConfig({ ...stack.env, RETRY_MAX_ATTEMPTS: '1', ...settings }), { state: null, deadLetters });
}

test('a replay keeps the letter of an Observation that still exists when only its Patient is gone', async () => {
  stack.openemr.store.put({
    resourceType: 'Observation',
    id: 'b0000000-0000-4000-8000-0000000000aa',
    status: 'final',
    code: { text: 'x' },
    subject: { reference: 'Patient/a0000000-0000-4000-8000-0000000000aa' },
  } as never);
  const deadLetters = new MemoryDeadLetterStore();
  await deadLetters.record([
    letter('Observation', 'b0000000-0000-4000-8000-0000000000aa'),
    letter('Patient', 'a0000000-0000-4000-8000-0000000000bb'),
  ]);
  const summary = await replayDeadLetters(workDepsOf(await connectorWith(deadLetters)));
  expect(summary.deletedAtSource).toBe(1);
  expect((await deadLetters.list()).map((d) => `${d.resourceType}/${d.id}`)).toEqual(['Observation/b0000000-0000-4000-8000-0000000000aa']);
});

test('an OpenEMR that answers 404 to every route retires no dead letter', async () => {
  const deadLetters = new MemoryDeadLetterStore();
  await deadLetters.record([letter('Patient', 'a0000000-0000-4000-8000-0000000000bb')]);
  const summary = await replayDeadLetters(workDepsOf(await connectorWith(deadLetters, { OPENEMR_BASE_URL: routelessUrl })));
  expect(summary.deletedAtSource).toBe(0);
  expect(await deadLetters.list()).toHaveLength(1);
});

test('a sync against an OpenEMR whose FHIR routes are missing answers 502 naming the settings, not 404', async () => {
  useStack(stack, { OPENEMR_BASE_URL: routelessUrl });
  const answer = await invoke(syncPatientHandler, { url: 'x', params: { id: 'a0000000-0000-4000-8000-0000000000bb' } });
  expect([answer.status, answer.json.issue[0].diagnostics]).toEqual([502, expect.stringMatching(/OPENEMR_SITE/)]);
});

test('an Observation whose Patient is still dead-lettered from an earlier run is held back, saying why', async () => {
  const { processWorkItem } = await import('../../src/sync/work-queue');
  const patientId = 'a0000000-0000-4000-8000-0000000000cc';
  const observationId = 'b0000000-0000-4000-8000-0000000000cc';
  stack.openemr.store.put({
    resourceType: 'Observation',
    id: observationId,
    status: 'final',
    code: { text: 'x' },
    subject: { reference: `Patient/${patientId}` },
  } as never);
  const deadLetters = new MemoryDeadLetterStore();
  await deadLetters.record([letter('Patient', patientId)]);
  const connector = await connectorWith(deadLetters);
  const summary = await processWorkItem({ sync: connector.sync, reader: connector.reader, deadLetters, pageSize: 200 }, {
    kind: 'observations',
    since: '1970-01-01T00:00:00Z',
    until: new Date(Date.now() + 3600_000).toISOString(),
  } as never);
  expect(summary.failures).toContainEqual(
    expect.objectContaining({
      resourceType: 'Observation',
      id: observationId,
      reason: `Not written because its Patient/${patientId} could not be written.`,
    }),
  );
  expect(await stack.ahds.read('Observation', observationId)).toBeUndefined();
});

test('a limit that is not a whole number is a 400 OperationOutcome on both listing endpoints; a large one is clamped', async () => {
  useStack(stack);
  for (const handler of [listDeadLettersHandler, unmappedCodesHandler]) {
    for (const limit of ['abc', '-1', '1.5']) {
      const answer = await invoke(handler, { method: 'GET', url: 'x', query: { limit } });
      expect([answer.status, answer.json.resourceType, answer.json.issue[0].diagnostics]).toEqual([
        400,
        'OperationOutcome',
        'limit must be a whole number from 1 to 10000.',
      ]);
    }
  }
  const clamped = await invoke(listDeadLettersHandler, { method: 'GET', url: 'deadletters', query: { limit: '99999' } });
  expect(clamped.status).toBe(200);
});

test('since and until must be ISO 8601 date-times on the run and backfill endpoints', async () => {
  useStack(stack);
  const cases: Array<[typeof syncRunHandler, string, Record<string, string>]> = [
    [syncRunHandler, 'sync/run', { since: 'yesterday' }],
    [syncRunHandler, 'sync/run', { since: '12/31/2025' }],
    [planBackfillHandler, 'backfill', { since: '12/31/2025' }],
    [planBackfillHandler, 'backfill', { until: 'tomorrow' }],
  ];
  for (const [handler, url, query] of cases) {
    const answer = await invoke(handler, { url, query });
    const name = Object.keys(query)[0];
    expect([answer.status, answer.json.issue[0].diagnostics]).toEqual([
      400,
      `${name} must be an ISO 8601 date (2025-01-01) or date-time with a zone such as 2025-01-01T00:00:00Z, a real calendar day, nothing after it.`,
    ]);
  }
});
