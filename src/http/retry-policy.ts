import type { RetrySettings } from '../config/load';

/**
 * The one retry policy of both clients, as pure functions so each decision is unit-tested.
 * Only what can succeed on retry is retried: 408, 429, 5xx and network errors. Never 400, 403,
 * 404, 412 or any other 4xx (a 401 gets one token renewal elsewhere, not a retry).
 */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599);
}

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
  'UND_ERR_SOCKET',
]);

/** A failure with no HTTP answer (reset, refused, timed out, DNS hiccup). */
export function isNetworkErrorCode(code: string | undefined, message = ''): boolean {
  if (code && NETWORK_CODES.has(code)) return true;
  return /socket hang up|network error|timeout/i.test(message);
}

/**
 * The wait a server asked for, in ms: x-ms-retry-after-ms (AHDS, precise) wins over Retry-After,
 * which may be whole seconds or an HTTP-date. Undefined when absent or unreadable.
 */
export function serverRetryAfterMs(headers: Record<string, unknown> | undefined, now = Date.now()): number | undefined {
  if (!headers) return undefined;
  const get = (name: string): string | undefined => {
    const v = headers[name] ?? headers[name.toLowerCase()];
    if (v === undefined || v === null) return undefined;
    return String(Array.isArray(v) ? v[0] : v).trim();
  };
  const ms = get('x-ms-retry-after-ms');
  if (ms && /^\d+(\.\d+)?$/.test(ms)) return Math.round(Number(ms));
  const ra = get('retry-after');
  if (!ra) return undefined;
  if (/^\d+(\.\d+)?$/.test(ra)) return Math.round(Number(ra) * 1000);
  const date = Date.parse(ra);
  if (!Number.isNaN(date)) return Math.max(0, date - now);
  return undefined;
}

/** Exponential backoff with full jitter: uniform in [0, min(max, base * 2^(retry-1))]. */
export function backoffMs(
  retry: number,
  settings: Pick<RetrySettings, 'baseDelayMs' | 'maxDelayMs'>,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(settings.maxDelayMs, settings.baseDelayMs * 2 ** Math.max(0, retry - 1));
  return Math.floor(random() * ceiling);
}

/**
 * The wait before retry number `retry` (1-based): the server's word if it gave one, clamped to
 * `maxServerWaitMs` (default `maxDelayMs`; AHDS asks up to 60 s and its writer honours that); else backoff.
 */
export function retryDelayMs(
  retry: number,
  headers: Record<string, unknown> | undefined,
  settings: Pick<RetrySettings, 'baseDelayMs' | 'maxDelayMs' | 'maxServerWaitMs'>,
  random: () => number = Math.random,
  now = Date.now(),
): number {
  const asked = serverRetryAfterMs(headers, now);
  if (asked !== undefined) return Math.min(settings.maxServerWaitMs ?? settings.maxDelayMs, Math.max(0, asked));
  return backoffMs(retry, settings, random);
}

export interface RetryDecisionInput {
  /** HTTP status, or undefined for a network error. */
  status?: number;
  errorCode?: string;
  errorMessage?: string;
  /** Retries done so far (0 before the first retry). */
  retriesDone: number;
  /** ms since the first attempt started. */
  elapsedMs: number;
  /** The wait the next retry would take. */
  nextDelayMs: number;
}

/** Whether to retry, within the attempt and total-time budgets. */
export function shouldRetry(input: RetryDecisionInput, settings: RetrySettings): boolean {
  if (input.retriesDone + 1 >= settings.maxAttempts) return false;
  if (input.elapsedMs + input.nextDelayMs > settings.maxTotalMs) return false;
  if (input.status !== undefined) return isRetryableStatus(input.status);
  return isNetworkErrorCode(input.errorCode, input.errorMessage);
}
