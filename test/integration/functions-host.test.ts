import http from 'node:http';
import { startFunctionsHost } from '../../stack/functions-host';
import { startStack, type Stack } from '../../stack';
import { useStack } from '../helpers/functions';
import { targetDiff, mapperFor, trimSource } from '../helpers/incremental-stack';

jest.setTimeout(120_000);

test('the local Functions host serves the real registrations and survives a malformed request', async () => {
  const host = await startFunctionsHost({ queues: false });
  try {
    const bad = await fetch(`${host.url}/sync/patients/%`, { method: 'POST' });
    expect(bad.status).toBe(404);
    expect(await bad.json()).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'not-found' }] });
    const invalid = await fetch(`${host.url}/sync/patients/not%20an%20id`, { method: 'POST' });
    expect(invalid.status).toBe(400);
    expect(await invalid.json()).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'invalid' }] });
  } finally {
    await host.close();
  }
});

/** A raw request (fetch would resolve dot segments and refuse some of these itself). */
function raw(
  url: string,
  method: string,
  path: string,
  body?: Buffer,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; json: any }> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: body ? { 'content-length': body.length } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json: text ? JSON.parse(text) : undefined });
      });
    });
    req.on('error', reject);
    if (body) req.end(body);
    else req.end();
  });
}

test('every error the local host answers itself is an OperationOutcome with the right status', async () => {
  const host = await startFunctionsHost({ queues: false });
  const outcome = (code: string) => ({ resourceType: 'OperationOutcome', issue: [expect.objectContaining({ severity: 'error', code })] });
  try {
    const cases: Array<[string, string, number, string]> = [
      ['GET', '/api/sync/run', 405, 'not-supported'],
      ['DELETE', '/api/deadletters', 405, 'not-supported'],
      ['POST', '/api/no/such/thing', 404, 'not-found'],
      ['GET', '/elsewhere', 404, 'not-found'],
      ['POST', '/api/sync/patients/../run', 400, 'invalid'],
      ['POST', '/api/sync/patients/%2e%2e/everything', 400, 'invalid'],
      ['POST', '/api/sync/patients/', 400, 'invalid'],
      ['POST', '/api/sync/patients//everything', 400, 'invalid'],
      ['POST', `/api/sync/patients/${'a'.repeat(17 * 1024)}`, 414, 'too-long'],
      ['POST', '/api/sync/run?since=2020-02-30T00:00:00Z', 400, 'invalid'],
      ['POST', '/api/sync/run?since=2020-01-01T00:00:00Z%00', 400, 'invalid'],
    ];
    for (const [method, path, status, code] of cases) {
      const answer = await raw(host.url, method, path);
      expect({ method, path: path.slice(0, 60), status: answer.status }).toEqual({ method, path: path.slice(0, 60), status });
      expect(answer.json).toMatchObject(outcome(code));
      expect(answer.headers['content-type']).toMatch(/^application\/fhir\+json/);
    }
    const wrongMethod = await raw(host.url, 'GET', '/api/sync/run');
    expect(wrongMethod.headers.allow).toBe('POST');
    const big = await raw(host.url, 'POST', '/api/sync/run', Buffer.alloc(2 * 1024 * 1024, 0x20));
    expect(big.status).toBe(413);
    expect(big.json).toMatchObject(outcome('too-costly'));
  } finally {
    await host.close();
  }
});

describe('with Azurite', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ azurite: true });
    trimSource(stack, 300);
    useStack(stack, { SYNC_LAG_SECONDS: '5', SYNC_TABLE_PREFIX: 'host' });
  });
  afterAll(() => stack?.close());

  test("POST /api/backfill answers 202 and the local host's queue worker runs it to the end", async () => {
    const host = await startFunctionsHost();
    try {
      const accepted = await fetch(`${host.url}/backfill`, { method: 'POST' });
      expect(accepted.status).toBe(202);
      const body = (await accepted.json()) as { runId: string; statusUrl: string };
      expect(accepted.headers.get('location')).toBe(body.statusUrl);
      let status: any;
      for (let i = 0; i < 600; i++) {
        status = await (await fetch(body.statusUrl)).json();
        if (status.done) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(status).toMatchObject({ kind: 'backfill', state: 'succeeded', done: true });
      expect(status.items.done).toBe(status.items.total);
      expect(await targetDiff(stack, mapperFor({ ...stack.env }))).toEqual({ missing: [], stale: [], extra: [] });
    } finally {
      await host.close();
    }
  });
});
