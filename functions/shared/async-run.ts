import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import type { RunStatus } from '../../src/state/run-status';
import { requestRun, type RunRequestBody } from '../../src/sync/async-runs';
import { requireState, SYNC_LEASE } from '../../src/sync/incremental';
import { errorResponse, outcomeResponse } from './http';
import { getConnector } from './runtime';

/** The status URL of a run, on the host the request came to (same function key rules). */
export function statusUrl(request: HttpRequest, runId: string): string {
  return `${new URL(request.url).origin}/api/runs/${encodeURIComponent(runId)}`;
}

/** The 202 answer of a long run: the run id, its status and where to follow it (Location too). */
export function acceptedResponse(request: HttpRequest, status: RunStatus): HttpResponseInit {
  const url = statusUrl(request, status.runId);
  return {
    status: 202,
    jsonBody: { runId: status.runId, kind: status.kind, state: status.state, statusUrl: url, request: status.request },
    headers: { 'Content-Type': 'application/json', Location: url, 'Retry-After': '5' },
  };
}

/**
 * Accepts a long run: 409 at once when a run holding the sync lease would make it a skip (sync
 * and reconcile share it), else the run is recorded and queued and the answer is 202.
 */
export async function acceptRun(
  request: HttpRequest,
  context: InvocationContext,
  body: RunRequestBody,
  options: { needsLease?: boolean } = {},
): Promise<HttpResponseInit> {
  try {
    const connector = await getConnector();
    const state = requireState(connector);
    if (options.needsLease) {
      const holder = await state.lease.peek(SYNC_LEASE);
      if (holder && Date.parse(holder.expiresAt) > Date.now()) {
        return outcomeResponse(409, 'conflict', `skipped: another run holds the lease until ${holder.expiresAt}`);
      }
    }
    const status = await requestRun({ runs: state.runs, queue: await state.storage.queue(state.queueName) }, body, context.invocationId);
    context.log(`Run ${status.runId} (${status.kind}) queued.`);
    return acceptedResponse(request, status);
  } catch (error) {
    return errorResponse(error, context);
  }
}
