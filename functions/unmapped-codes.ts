import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { requireState } from '../src/sync/incremental';
import { errorResponse, outcomeResponse } from './shared/http';
import { checkSettingsAtStartup, getConnector, inOperation } from './shared/runtime';

checkSettingsAtStartup();

/**
 * GET /api/unmapped-codes[?limit=]: codings no ConceptMap covered, with how often runs met them,
 * most frequent first, so they can be added to a map. Codes only, never patient data.
 */
async function handleUnmappedCodes(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const limitRaw = request.query.get('limit');
  if (limitRaw !== null && !/^\d{1,5}$/.test(limitRaw)) return outcomeResponse(400, 'invalid', 'limit must be a whole number from 1 to 10000.');
  try {
    const state = requireState(await getConnector());
    const codes = await state.unmapped.list(Math.min(10000, Math.max(1, Number(limitRaw ?? 500))));
    return { status: 200, jsonBody: { count: codes.length, codes }, headers: { 'Content-Type': 'application/json' } };
  } catch (error) {
    return errorResponse(error, context);
  }
}

export const unmappedCodesHandler = inOperation(handleUnmappedCodes);

app.http('unmappedCodes', { methods: ['GET'], authLevel: 'function', route: 'unmapped-codes', handler: unmappedCodesHandler });
