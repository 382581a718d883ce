import { type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { outcomeResponse } from './shared/http';
import { allowedMethods, httpRoute } from './shared/routes';

/**
 * Every path below /api that no other function serves (the host prefers literal routes to this
 * catch-all): 405 with Allow when the path exists for other methods, else 404; both as
 * OperationOutcomes, like every other error of the connector. No settings are needed to answer.
 */
export async function handleNotFound(request: HttpRequest, _context: InvocationContext): Promise<HttpResponseInit> {
  const path = request.params.path ?? '';
  const allowed = allowedMethods(path);
  if (allowed.length > 0) {
    return outcomeResponse(405, 'not-supported', `${request.method} is not allowed here; this endpoint takes ${allowed.join(' or ')}.`, {
      Allow: allowed.join(', '),
    });
  }
  return outcomeResponse(404, 'not-found', 'No endpoint serves this path (the README lists the endpoints under /api).');
}

export const notFoundHandler = handleNotFound;

httpRoute('notFound', {
  methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'],
  authLevel: 'anonymous',
  route: '{*path}',
  handler: notFoundHandler,
});
