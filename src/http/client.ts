import axios, { AxiosError, type AxiosInstance, type InternalAxiosRequestConfig } from 'axios';
import axiosRetry from 'axios-retry';
import type { RetrySettings } from '../config/load';
import type { Side } from '../telemetry/names';
import type { Telemetry } from '../telemetry/telemetry';
import { codeForStatus, safeDetail, SIDE_NAMES, UpstreamError } from './errors';
import { isNetworkErrorCode, retryDelayMs, serverRetryAfterMs, shouldRetry } from './retry-policy';

/** Supplies bearer tokens; `invalidate` drops a cached one after the server refused it. */
export interface TokenSource {
  getToken(): Promise<string>;
  invalidate(): void;
}

export interface HttpClientOptions {
  side: Side;
  baseURL: string;
  timeoutMs: number;
  retry: RetrySettings;
  telemetry: Telemetry;
  /** Dependency target name in telemetry. */
  dependencyName: string;
  /** How errors name the other side (default SIDE_NAMES: a generic FHIR target is no AHDS service). */
  name?: string;
  auth?: TokenSource;
  /** Re-signs or otherwise refreshes a request before it is retried (e.g. a fresh jti). */
  beforeRetry?: (config: InternalAxiosRequestConfig) => Promise<void> | void;
  random?: () => number;
  headers?: Record<string, string>;
  /** Told of every retry with the status that caused it (the adaptive limiter backs off on 429). */
  onRetry?: (status: number | 'network') => void;
}

interface Meta {
  firstAttemptAt: number;
  attemptStartedAt: number;
  nextDelayMs?: number;
  authRenewed?: boolean;
}

type Config = InternalAxiosRequestConfig & { meta?: Meta };

/**
 * The axios factory both clients use: one retry policy (axios-retry with our decisions), bearer
 * tokens renewed once on a 401, dependency telemetry per attempt, and failures turned into
 * UpstreamError with no body or header content in the message.
 */
export function createHttpClient(options: HttpClientOptions): AxiosInstance {
  const { side, telemetry, retry } = options;
  const random = options.random ?? Math.random;
  const instance = axios.create({
    baseURL: options.baseURL,
    timeout: options.timeoutMs,
    headers: options.headers,
    // Large bundles are expected; never let axios cap them below what the services send.
    maxContentLength: Infinity,
    maxBodyLength: Infinity,
  });

  instance.interceptors.request.use(async (config: Config) => {
    const now = Date.now();
    config.meta = { ...(config.meta ?? { firstAttemptAt: now }), attemptStartedAt: now };
    if (options.auth) config.headers.set('Authorization', `Bearer ${await options.auth.getToken()}`);
    return config;
  });

  instance.interceptors.response.use(
    (response) => {
      recordDependency(response.config as Config, response.status, requestIdOf(response.headers));
      return response;
    },
    (error: unknown) => {
      if (error instanceof AxiosError && error.config)
        recordDependency(error.config as Config, error.response?.status ?? error.code ?? 'network', requestIdOf(error.response?.headers));
      return Promise.reject(error);
    },
  );

  axiosRetry(instance, {
    retries: Math.max(0, retry.maxAttempts - 1),
    shouldResetTimeout: true,
    retryCondition: (error) => {
      const config = error.config as Config | undefined;
      if (!config?.meta) return false;
      const retriesDone = attemptsOf(config) - 1;
      const nextDelayMs = retryDelayMs(retriesDone + 1, error.response?.headers as Record<string, unknown>, retry, random);
      config.meta.nextDelayMs = nextDelayMs;
      return shouldRetry(
        {
          status: error.response?.status,
          errorCode: error.code,
          errorMessage: error.message,
          retriesDone,
          elapsedMs: Date.now() - config.meta.firstAttemptAt,
          nextDelayMs,
        },
        retry,
      );
    },
    retryDelay: (_count, error) => (error.config as Config | undefined)?.meta?.nextDelayMs ?? 0,
    onRetry: async (_count, error, config) => {
      telemetry.retry(side, error.response?.status ?? 'network');
      options.onRetry?.(error.response?.status ?? 'network');
      if (options.beforeRetry) await options.beforeRetry(config as InternalAxiosRequestConfig);
    },
  });

  instance.interceptors.response.use(undefined, async (error: unknown) => {
    if (!(error instanceof AxiosError) || !error.config) return Promise.reject(error);
    const config = error.config as Config;
    if (error.response?.status === 401 && options.auth && !config.meta?.authRenewed) {
      // Tokens can expire early or be revoked: renew once, then give up.
      options.auth.invalidate();
      config.meta = { ...(config.meta ?? { firstAttemptAt: Date.now(), attemptStartedAt: Date.now() }), authRenewed: true };
      return instance.request(config);
    }
    if (error.response?.status === 401) telemetry.authFailure(side, `${options.name ?? SIDE_NAMES[side]} refused the access token (401)`);
    return Promise.reject(error);
  });

  // Last: whatever is still an AxiosError becomes a typed UpstreamError.
  instance.interceptors.response.use(undefined, (error: unknown) => Promise.reject(toUpstreamError(side, error, options.name)));

  function recordDependency(config: Config, resultCode: number | string, requestId: string | undefined): void {
    const started = config.meta?.attemptStartedAt ?? Date.now();
    telemetry.dependency({
      ...(requestId ? { requestId } : {}),
      side,
      name: `${(config.method ?? 'get').toUpperCase()} ${pathTemplate(config.url ?? '')}`,
      target: options.dependencyName,
      resultCode,
      durationMs: Date.now() - started,
      success: typeof resultCode === 'number' && resultCode < 400,
    });
  }

  return instance;
}

/** "/Patient/abc?x=1" -> "/Patient/{id}": groups dependencies and keeps ids and queries out of names. */
function pathTemplate(url: string): string {
  const path = url.replace(/^https?:\/\/[^/]+/, '').split('?')[0] ?? '';
  return (
    path
      .split('/')
      .map((seg, i, all) =>
        i > 0 && /^[A-Z][A-Za-z]+$/.test(all[i - 1] ?? '') && seg && !seg.startsWith('$') && !seg.startsWith('_') ? '{id}' : seg,
      )
      .join('/') || '/'
  );
}

/** The server's correlation id of an answer (AHDS and fhir-server send X-Request-Id), when it is a plain token. */
export function requestIdOf(headers: unknown): string | undefined {
  const raw = (headers as Record<string, unknown> | undefined)?.['x-request-id'];
  const value = Array.isArray(raw) ? raw[0] : raw;
  return typeof value === 'string' && /^[A-Za-z0-9._:-]{1,100}$/.test(value) ? value : undefined;
}

/** Attempts made so far for a request: axios-retry keeps its count on the request config. */
export function attemptsOf(config: unknown): number {
  const state = (config as Record<string, { retryCount?: number }> | undefined)?.['axios-retry'];
  return (state?.retryCount ?? 0) + 1;
}

function toUpstreamError(side: Side, error: unknown, name = SIDE_NAMES[side]): UpstreamError {
  if (error instanceof UpstreamError) return error;
  const converted = convert(side, error, name);
  converted.sideName = name;
  if (error instanceof AxiosError && error.response) {
    converted.requestId = requestIdOf(error.response.headers);
    converted.retryAfterMs = serverRetryAfterMs(error.response.headers as Record<string, unknown>);
  }
  return converted;
}

function convert(side: Side, error: unknown, name: string): UpstreamError {
  if (error instanceof AxiosError) {
    const attempts = attemptsOf(error.config);
    const status = error.response?.status;
    if (status === undefined) {
      const cause = isNetworkErrorCode(error.code, error.message) ? (error.code ?? 'network error') : (error.code ?? 'request failed');
      return new UpstreamError(
        side,
        cause === 'ECONNABORTED' || cause === 'ETIMEDOUT' ? 'Timeout' : 'Network',
        `${name} could not be reached (${cause}) after ${attempts} attempt(s).`,
        undefined,
        attempts,
      );
    }
    const code = codeForStatus(status);
    const detail = safeDetail(error.response?.data);
    return new UpstreamError(
      side,
      code,
      `${name} answered ${status} (${describe(code)}${detail ? `: ${detail}` : ''})${attempts > 1 ? ` after ${attempts} attempts` : ''}.`,
      status,
      attempts,
      detail,
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return new UpstreamError(side, 'Failed', `${name} call failed: ${message}`);
}

function describe(code: string): string {
  switch (code) {
    case 'NotFound':
      return 'not found';
    case 'AuthenticationFailed':
      return 'authentication failed';
    case 'Forbidden':
      return 'forbidden: the identity lacks the role or scope';
    case 'Throttled':
      return 'throttled';
    case 'Unavailable':
      return 'service unavailable or failing';
    case 'Timeout':
      return 'timed out';
    case 'Conflict':
      return 'conflict';
    case 'BadRequest':
      return 'request rejected';
    default:
      return 'unexpected answer';
  }
}
