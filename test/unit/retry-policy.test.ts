import { backoffMs, isRetryableStatus, retryDelayMs, serverRetryAfterMs, shouldRetry } from '../../src/http/retry-policy';

const settings = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 10_000, maxTotalMs: 60_000 };
const decide = (status: number | undefined, extra: Partial<Parameters<typeof shouldRetry>[0]> = {}) =>
  shouldRetry({ status, retriesDone: 0, elapsedMs: 0, nextDelayMs: 0, ...extra }, settings);

describe('retry decisions by status code', () => {
  test.each([408, 429, 500, 502, 503, 504])('%i is retried', (status) => {
    expect(isRetryableStatus(status)).toBe(true);
    expect(decide(status)).toBe(true);
  });

  test.each([400, 401, 403, 404, 409, 412, 422])('%i is never retried', (status) => {
    expect(isRetryableStatus(status)).toBe(false);
    expect(decide(status)).toBe(false);
  });

  test('connection resets and refusals are retried', () => {
    expect(decide(undefined, { errorCode: 'ECONNRESET' })).toBe(true);
    expect(decide(undefined, { errorCode: 'ECONNREFUSED' })).toBe(true);
    expect(decide(undefined, { errorMessage: 'socket hang up' })).toBe(true);
  });

  test('an unknown client-side error is not retried', () => {
    expect(decide(undefined, { errorCode: 'ERR_INVALID_URL', errorMessage: 'Invalid URL' })).toBe(false);
  });

  test('attempts are bounded: the last allowed attempt is not followed by a retry', () => {
    expect(decide(503, { retriesDone: 3 })).toBe(true);
    expect(decide(503, { retriesDone: 4 })).toBe(false);
  });

  test('total time is bounded: a retry that would end past the budget is not made', () => {
    expect(decide(429, { elapsedMs: 59_000, nextDelayMs: 2_000 })).toBe(false);
  });
});

describe('retry delays', () => {
  test('x-ms-retry-after-ms wins over Retry-After', () => {
    expect(serverRetryAfterMs({ 'retry-after': '5', 'x-ms-retry-after-ms': '1200' })).toBe(1200);
  });

  test('Retry-After in seconds', () => {
    expect(serverRetryAfterMs({ 'retry-after': '3' })).toBe(3000);
  });

  test('Retry-After as an HTTP-date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(serverRetryAfterMs({ 'retry-after': 'Thu, 01 Jan 2026 00:00:07 GMT' }, now)).toBe(7000);
  });

  test('an unreadable Retry-After is ignored in favour of backoff', () => {
    expect(serverRetryAfterMs({ 'retry-after': 'soon' })).toBeUndefined();
    expect(retryDelayMs(1, { 'retry-after': 'soon' }, settings, () => 0.5)).toBe(50);
  });

  test('a server-requested wait is clamped to the longest allowed delay', () => {
    expect(retryDelayMs(1, { 'retry-after': '3600' }, settings)).toBe(10_000);
  });

  test('backoff is exponential with full jitter and capped', () => {
    expect(backoffMs(1, settings, () => 0.999)).toBe(99);
    expect(backoffMs(4, settings, () => 0.999)).toBe(799);
    expect(backoffMs(20, settings, () => 0.999)).toBe(9990);
    expect(backoffMs(3, settings, () => 0)).toBe(0);
  });
});
