import { type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { requireState } from '../src/sync/incremental';
import { errorResponse, jsonResponse, limitParam } from './shared/http';
import { checkSettingsAtStartup, getConnector, inOperation } from './shared/runtime';
import { httpRoute } from './shared/routes';

checkSettingsAtStartup();

/**
 * GET /api/unmapped-codes[?limit=]: codings no ConceptMap covered, with how often runs met them,
 * most frequent first, so they can be added to a map. Codes only, never patient data.
 */
async function handleUnmappedCodes(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const limit = limitParam(request, 500);
  if (typeof limit !== 'number') return limit;
  try {
    const state = requireState(await getConnector());
    const codes = await state.unmapped.list(limit);
    return jsonResponse(200, { count: codes.length, codes });
  } catch (error) {
    return errorResponse(error, context);
  }
}

export const unmappedCodesHandler = inOperation(handleUnmappedCodes);

httpRoute('unmappedCodes', { methods: ['GET'], authLevel: 'function', route: 'unmapped-codes', handler: unmappedCodesHandler });
