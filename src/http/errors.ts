import { scrubString } from '../telemetry/scrub';
import type { Side } from '../telemetry/names';

export type UpstreamErrorCode =
  | 'NotFound'
  | 'BadRequest'
  | 'AuthenticationFailed'
  | 'Forbidden'
  | 'Throttled'
  | 'Unavailable'
  | 'Timeout'
  | 'Network'
  | 'InvalidResponse'
  | 'Conflict'
  | 'Failed';

/**
 * A failed call to OpenEMR or AHDS, typed like the Azure SDK's RestError (statusCode, code).
 * The message names the side, the status and the cause; it never quotes a response body, which
 * could carry patient data, nor a request, which carries tokens.
 */
export class UpstreamError extends Error {
  constructor(
    readonly side: Side,
    readonly code: UpstreamErrorCode,
    message: string,
    readonly statusCode?: number,
    readonly attempts = 1,
    /** A short, value-free cause from the answer: an OAuth error code or OperationOutcome issue. */
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }

  /** For a NotFound: the resource the source said it does not have ("Type/id"), when it said so. */
  missing?: string;

  /**
   * How the message names the other side when it is not SIDE_NAMES' (a generic FHIR target is no
   * AHDS service): answers built from this error name the side the same way.
   */
  sideName?: string;

  /** The server's correlation id of the failed answer (AHDS: X-Request-Id), for support tickets. */
  requestId?: string;

  /** The wait the server asked for with its answer (Retry-After, x-ms-retry-after-ms), in ms. */
  retryAfterMs?: number;

  /** True when the other side is down or overloaded, as opposed to refusing this request. */
  get isOutage(): boolean {
    return ['Throttled', 'Unavailable', 'Timeout', 'Network'].includes(this.code);
  }
}

export function codeForStatus(status: number | undefined): UpstreamErrorCode {
  if (status === undefined) return 'Network';
  if (status === 404 || status === 410) return 'NotFound';
  if (status === 401) return 'AuthenticationFailed';
  if (status === 403) return 'Forbidden';
  if (status === 408) return 'Timeout';
  if (status === 409 || status === 412) return 'Conflict';
  if (status === 429) return 'Throttled';
  if (status >= 500) return 'Unavailable';
  if (status >= 400) return 'BadRequest';
  return 'InvalidResponse';
}

export const SIDE_NAMES: Record<Side, string> = { openemr: 'OpenEMR', ahds: 'AHDS FHIR service' };

/**
 * A value-free summary of an error body: the OAuth error code, or the OperationOutcome issue code
 * and diagnostics with quoted text removed (validators quote the offending values).
 */
export function safeDetail(body: unknown): string | undefined {
  if (!body || typeof body !== 'object') return undefined;
  const b = body as Record<string, unknown>;
  if (typeof b.error === 'string' && /^[a-z_]{3,40}$/.test(b.error)) return b.error;
  if (b.resourceType === 'OperationOutcome' && Array.isArray(b.issue)) {
    const issue = (b.issue[0] ?? {}) as Record<string, unknown>;
    const code = typeof issue.code === 'string' ? issue.code : 'error';
    const diag = typeof issue.diagnostics === 'string' ? scrubText(issue.diagnostics) : '';
    return diag ? `${code}: ${diag}` : code;
  }
  if (b.validationErrors && typeof b.validationErrors === 'object') {
    return `invalid: ${Object.keys(b.validationErrors as object).join(', ')}`;
  }
  return undefined;
}

/**
 * Removes quoted values and long tokens from a server message, then whatever the telemetry
 * scrubber removes (JWTs, bearer tokens, PEM keys, SSNs, ...), and caps its length.
 */
export function scrubText(text: string): string {
  return scrubString(text.replace(/"[^"]*"|'[^']*'|`[^`]*`/g, '<value>').replace(/\b[A-Za-z0-9_-]{40,}\b/g, '<redacted>'), 300);
}
