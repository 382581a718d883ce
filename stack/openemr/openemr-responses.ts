/**
 * OpenEMR's answer shapes. None of them is an OperationOutcome: the FHIR API answers kernel errors
 * as `{error, message, code}`, validation as `{validationErrors}`, an unknown id as `[]`, and the
 * OAuth server (league/oauth2-server) as `{error, error_description, hint, message}`.
 */
import type { ServerResponse } from 'node:http';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendText(res, status, typeof body === 'string' ? body : JSON.stringify(body), 'application/json', headers);
}

export function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  contentType: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

export function kernelError(message: string): { error: string; message: string; code: number } {
  return { error: 'An error occurred', message, code: 0 };
}

export const ROUTE_NOT_FOUND = kernelError('Route not found');
/** SiteSetupListener.php:110: a path whose site does not exist; 400 through ExceptionHandlerListener. */
export const API_SITE_ERROR = kernelError(
  'OpenEMR Error: api site error, so forced exit.  Please ensure that the site is set up correctly in the OpenEMR configuration.',
);
/** OAuth2AuthorizationListener.php:108: rest_api, rest_fhir_api and rest_portal_api all off; 404. */
export const API_DISABLED = kernelError('OpenEMR Error: API is disabled');

export const INVALID_UUID_VALIDATION = {
  validationErrors: {
    _id: 'The search field argument was invalid, improperly formatted, or could not be parsed.  Inner message: UUID columns must be a valid UUID string',
  },
};

const OAUTH_DESCRIPTIONS: Record<string, string> = {
  invalid_request:
    'The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed.',
  invalid_client: 'Client authentication failed',
  unsupported_grant_type: 'The authorization grant type is not supported by the authorization server.',
  invalid_scope: 'The requested scope is invalid, unknown, or malformed',
  access_denied: 'The resource owner or authorization server denied the request.',
};

/**
 * league/oauth2-server error body; `hint` only when there is one, as the library does. `message`
 * replaces the description for OpenEMR's own `new OAuthServerException(message, 0, error)`.
 */
export function oauthError(error: keyof typeof OAUTH_DESCRIPTIONS | string, hint?: string, message?: string): Record<string, string> {
  const description = message ?? OAUTH_DESCRIPTIONS[error] ?? error;
  const body: Record<string, string> = { error, error_description: description };
  if (hint) body.hint = hint;
  body.message = description;
  return body;
}

/** Status text for injected faults, phrased as OpenEMR's kernel would. */
export const FAULT_MESSAGES: Record<number, string> = {
  408: 'Request Timeout',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};
