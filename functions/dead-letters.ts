import { type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { isValidFhirId } from '../src/fhir/ids';

import { replayDeadLetters } from '../src/sync/replay';
import { acceptRun } from './shared/async-run';
import { WORK_ITEM_TYPE, workDepsOf } from '../src/sync/work-queue';
import { errorResponse, jsonResponse, limitParam, outcomeResponse } from './shared/http';
import { checkSettingsAtStartup, getConnector, inOperation } from './shared/runtime';
import { httpRoute } from './shared/routes';

checkSettingsAtStartup();

const TYPES = new Set(['Patient', 'Observation', WORK_ITEM_TYPE]);

function badType(type: string | null | undefined): HttpResponseInit | undefined {
  if (type === null || type === undefined || TYPES.has(type)) return undefined;
  return outcomeResponse(400, 'invalid', `resourceType must be one of ${[...TYPES].join(', ')}.`);
}

/** GET /api/deadletters[?resourceType=&limit=]: what failed, with type, id, status, reason, attempts and time. Never content. */
async function handleListDeadLetters(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const resourceType = request.query.get('resourceType') ?? undefined;
  const invalid = badType(resourceType);
  if (invalid) return invalid;
  const limit = limitParam(request, 100);
  if (typeof limit !== 'number') return limit;
  try {
    const { deadLetters } = await getConnector();
    const items = await deadLetters.list({ resourceType, limit });
    return jsonResponse(200, { count: items.length, items });
  } catch (error) {
    return errorResponse(error, context);
  }
}

/**
 * POST /api/deadletters/replay[?resourceType=]: replays every dead letter (or those of one type).
 * There may be thousands, each read again from OpenEMR: 202 with a run id and a status URL
 * (GET /api/runs/{runId}), and the queue worker replays them.
 */
async function handleReplayDeadLetters(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const resourceType = request.query.get('resourceType') ?? undefined;
  const invalid = badType(resourceType);
  if (invalid) return invalid;
  return acceptRun(request, context, { operation: 'replay', ...(resourceType ? { resourceType } : {}) });
}

/** POST /api/deadletters/replay/{resourceType}/{id}: replays one; 404 when there is no such dead letter. */
async function handleReplayOneDeadLetter(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const { resourceType, id } = request.params;
  const invalid = badType(resourceType ?? '');
  if (invalid) return invalid;
  if (!id || (resourceType !== WORK_ITEM_TYPE && !isValidFhirId(id)) || !/^[A-Za-z0-9._-]{1,1000}$/.test(id)) {
    return outcomeResponse(400, 'invalid', 'id must be a FHIR id (or a work item id as listed).');
  }
  try {
    const connector = await getConnector();
    const summary = await replayDeadLetters(workDepsOf(connector), {
      key: { resourceType: resourceType!, id },
      runId: context.invocationId,
    });
    if (summary.items[0]?.outcome === 'not-found') return outcomeResponse(404, 'not-found', `No dead letter for ${resourceType}/${id}.`);
    return jsonResponse(200, summary);
  } catch (error) {
    return errorResponse(error, context);
  }
}

export const listDeadLettersHandler = inOperation(handleListDeadLetters);

export const replayDeadLettersHandler = inOperation(handleReplayDeadLetters);

export const replayOneDeadLetterHandler = inOperation(handleReplayOneDeadLetter);

httpRoute('listDeadLetters', { methods: ['GET'], authLevel: 'function', route: 'deadletters', handler: listDeadLettersHandler });
httpRoute('replayDeadLetters', {
  methods: ['POST'],
  authLevel: 'function',
  route: 'deadletters/replay',
  handler: replayDeadLettersHandler,
});
httpRoute('replayOneDeadLetter', {
  methods: ['POST'],
  authLevel: 'function',
  route: 'deadletters/replay/{resourceType}/{id}',
  handler: replayOneDeadLetterHandler,
});
