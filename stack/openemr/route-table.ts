/**
 * Maps a request to a route template. Templates name the routes in stats() and let the handler
 * count a request (and fault it) before doing any work.
 */
import { isSupportedType, type SupportedType } from './standin-types';
export type RouteName =
  | 'POST /oauth2/token'
  | 'POST /oauth2/registration'
  | 'GET /oauth2/.well-known/openid-configuration'
  | 'GET /fhir/.well-known/smart-configuration'
  | 'GET /fhir/metadata'
  | `GET /fhir/${SupportedType}`
  | `GET /fhir/${SupportedType}/{id}`
  | 'GET /fhir/$export'
  | 'GET /fhir/Patient/$export'
  | 'GET /fhir/Group/{id}/$export'
  | 'GET /fhir/$bulkdata-status'
  | 'DELETE /fhir/$bulkdata-status'
  | 'GET /fhir/Binary/{id}'
  | 'unmatched';

export interface RouteMatch {
  name: RouteName;
  /** The {id} segment, if the template has one. */
  id?: string;
  /** FHIR routes need a bearer token unless public. */
  fhir: boolean;
  /** A type's search (`GET /fhir/<Type>`) or read (`GET /fhir/<Type>/{id}`) route: the type. */
  type?: SupportedType;
}

export function matchRoute(method: string, segments: string[], site: string): RouteMatch {
  const unmatched: RouteMatch = { name: 'unmatched', fhir: false };
  if (segments[0] === 'oauth2' && segments[1] === site) {
    const rest = segments.slice(2).join('/');
    if (method === 'POST' && rest === 'token') return { name: 'POST /oauth2/token', fhir: false };
    if (method === 'POST' && rest === 'registration') return { name: 'POST /oauth2/registration', fhir: false };
    if (method === 'GET' && rest === '.well-known/openid-configuration')
      return { name: 'GET /oauth2/.well-known/openid-configuration', fhir: false };
    return unmatched;
  }
  if (segments[0] !== 'apis' || segments[1] !== site || segments[2] !== 'fhir') return unmatched;
  const s = segments.slice(3);
  const fhir = (name: RouteName, id?: string): RouteMatch => ({ name, id, fhir: true });
  if (method === 'GET' && s.length === 2 && s[0] === '.well-known' && s[1] === 'smart-configuration')
    return { name: 'GET /fhir/.well-known/smart-configuration', fhir: false };
  if (method === 'GET' && s.length === 1 && s[0] === 'metadata') return { name: 'GET /fhir/metadata', fhir: false };
  if (s.length === 1 && s[0] === '$bulkdata-status') {
    if (method === 'GET') return fhir('GET /fhir/$bulkdata-status');
    if (method === 'DELETE') return fhir('DELETE /fhir/$bulkdata-status');
  }
  if (method !== 'GET') return { name: 'unmatched', fhir: true };
  if (s.length === 1 && s[0] === '$export') return fhir('GET /fhir/$export');
  if (s.length === 2 && s[0] === 'Patient' && s[1] === '$export') return fhir('GET /fhir/Patient/$export');
  if (s.length === 3 && s[0] === 'Group' && s[2] === '$export') return fhir('GET /fhir/Group/{id}/$export', s[1]);
  if (s.length === 2 && s[0] === 'Binary') return fhir('GET /fhir/Binary/{id}', s[1]);
  // Every served type has a search and a read route (standin-types.ts).
  const type = s[0];
  if (type !== undefined && isSupportedType(type)) {
    if (s.length === 1) return { name: `GET /fhir/${type}`, type, fhir: true };
    if (s.length === 2) return { name: `GET /fhir/${type}/{id}`, id: s[1], type, fhir: true };
  }
  return { name: 'unmatched', fhir: true };
}
