import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { ConfigError } from '../../src/config/load';
import { classifyRunError, runFailureMessage } from '../../src/state/errors';
import { isValidFhirId } from '../../src/fhir/ids';
import { operationOutcome, type IssueCode } from '../../src/fhir/operation-outcome';
import { SIDE_NAMES, UpstreamError } from '../../src/http/errors';
import { INSTANT_EXAMPLE, parseInstant } from '../../src/config/instant';

const FHIR_JSON = 'application/fhir+json';

export function outcomeResponse(
  status: number,
  code: IssueCode,
  diagnostics: string,
  headers: Record<string, string> = {},
): HttpResponseInit {
  return { status, jsonBody: operationOutcome(code, diagnostics), headers: { 'Content-Type': FHIR_JSON, ...headers } };
}

/** Checks a route id against FHIR's id rule before any outbound call. */
export function checkId(type: string, id: string | undefined): HttpResponseInit | undefined {
  if (isValidFhirId(id)) return undefined;
  return outcomeResponse(400, 'invalid', `${type} id must be 1-64 characters of letters, digits, '-' and '.' (FHIR id rule).`);
}

/**
 * Maps a failure to an HTTP answer: unknown id 404, the other side down 503 (with Retry-After when
 * it is throttling) or refusing 502, each naming the side and the cause; anything else 500 with the
 * invocation id. Never a stack trace, never a body from upstream.
 */
export function errorResponse(error: unknown, context: InvocationContext, subject?: { type: string; id: string }): HttpResponseInit {
  const run = classifyRunError(error);
  if (run) {
    context.warn(run.message);
    return outcomeResponse(run.status, run.code, run.message, run.status === 503 ? { 'Retry-After': '30' } : {});
  }
  if (error instanceof UpstreamError) {
    const side = error.sideName ?? SIDE_NAMES[error.side];
    if (error.code === 'NotFound' && error.side === 'openemr' && subject) {
      return outcomeResponse(404, 'not-found', `${subject.type}/${subject.id} was not found in OpenEMR.`);
    }
    context.warn(`${side} failed: ${error.message}`);
    if (error.isOutage) {
      return outcomeResponse(
        503,
        error.code === 'Throttled' ? 'throttled' : 'transient',
        `${side} is unavailable: ${error.message} Try again later.`,
        { 'Retry-After': '30' },
      );
    }
    return outcomeResponse(
      502,
      error.code === 'AuthenticationFailed' || error.code === 'Forbidden' ? 'security' : 'exception',
      `${side} refused the request: ${error.message}`,
    );
  }
  if (error instanceof ConfigError) {
    context.error(error.message);
    return outcomeResponse(503, 'exception', notConfigured(error), { 'Retry-After': '60' });
  }
  context.error(`Unexpected ${runFailureMessage(error)} (invocation ${context.invocationId}).`);
  return outcomeResponse(500, 'exception', `Internal error; quote invocation id ${context.invocationId} when reporting it.`);
}

/** The answer of an app whose settings are missing or wrong: what to set, then why. */
export function notConfigured(error: ConfigError): string {
  return `Not configured: set ${error.setting}. ${error.message}`;
}

/**
 * A date-time query parameter: a strict ISO 8601 date or instant (parseInstant: no roll-over,
 * nothing after the value), or absent. Answers the 400 OperationOutcome when it is something else,
 * without echoing what was sent.
 */
export function instantParam(request: HttpRequest, name: string): string | undefined | HttpResponseInit {
  const value = request.query.get(name) ?? undefined;
  if (value !== undefined && parseInstant(value) === undefined) {
    return outcomeResponse(
      400,
      'invalid',
      `${name} must be an ISO 8601 date (2025-01-01) or date-time with a zone such as ${INSTANT_EXAMPLE}, a real calendar day, nothing after it.`,
    );
  }
  return value;
}

/** A JSON answer (counts and identifiers only: every caller's body is already free of content). */
export function jsonResponse(status: number, body: unknown): HttpResponseInit {
  return { status, jsonBody: body, headers: { 'Content-Type': 'application/json' } };
}

/**
 * The `limit` query parameter: a whole number clamped to 1-10000, or the default when absent;
 * an OperationOutcome answer (400) when it is not a whole number.
 */
export function limitParam(request: HttpRequest, fallback: number): number | HttpResponseInit {
  const raw = request.query.get('limit');
  if (raw !== null && !/^\d{1,5}$/.test(raw)) return outcomeResponse(400, 'invalid', 'limit must be a whole number from 1 to 10000.');
  return Math.min(10000, Math.max(1, Number(raw ?? fallback)));
}

/** Where a 422 OperationOutcome carries the run summary (JSON text), so nothing of it is lost. */
export const RUN_SUMMARY_EXTENSION = 'urn:openemr-ahds-fhir-sync:run-summary';

/** Failures listed as issues of a 422 answer (the summary in the extension has up to 100). */
const LISTED_ISSUES = 20;

/**
 * 200 with the summary when anything was written or nothing failed. 422 when the item itself
 * failed: an OperationOutcome with one issue for the run and one per failed resource (type, id,
 * stage and reason; never content), the whole summary in an extension.
 */
export function summaryResponse(summary: {
  status: 'ok' | 'partial' | 'failed';
  message?: string;
  failures?: Array<{ resourceType: string; id: string; stage: string; status?: number; reason: string }>;
}): HttpResponseInit {
  if (summary.status !== 'failed') return jsonResponse(200, summary);
  const failures = summary.failures ?? [];
  const outcome = operationOutcome(
    'processing',
    summary.message ?? `Nothing was written: ${failures.length} resource(s) failed (listed as issues; each is dead-lettered).`,
  );
  for (const f of failures.slice(0, LISTED_ISSUES)) {
    outcome.issue.push({
      severity: 'error',
      code: 'processing',
      diagnostics: `${f.resourceType}/${f.id} (${f.stage}${f.status ? `, ${f.status}` : ''}): ${f.reason}`,
    });
  }
  return {
    status: 422,
    jsonBody: { ...outcome, extension: [{ url: RUN_SUMMARY_EXTENSION, valueString: JSON.stringify(summary) }] },
    headers: { 'Content-Type': FHIR_JSON },
  };
}
