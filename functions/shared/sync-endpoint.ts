import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import type { SyncService, SyncSummary } from '../../src/sync/sync-service';
import { checkId, errorResponse, summaryResponse } from './http';
import { getConnector, inOperation } from './runtime';

/**
 * The shape every "sync one thing by id" endpoint shares: check the id, run the core operation
 * with the invocation id as run id, answer the summary or a mapped error.
 */
export function syncByIdHandler(
  type: 'Patient' | 'Observation',
  run: (sync: SyncService, id: string, runId: string) => Promise<SyncSummary>,
) {
  return inOperation(handle);

  async function handle(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
    const id = request.params.id;
    const invalid = checkId(type, id);
    if (invalid) return invalid;
    try {
      const { sync } = await getConnector();
      const summary = await run(sync, id!, context.invocationId);
      context.log(
        `${summary.operation} ${type}/${id}: ${summary.status}; read ${summary.read}, created ${summary.created}, updated ${summary.updated}, unchanged ${summary.unchanged}, failed ${summary.failed} in ${summary.durationMs} ms.`,
      );
      return summaryResponse(summary);
    } catch (error) {
      return errorResponse(error, context, { type, id: id! });
    }
  }
}
