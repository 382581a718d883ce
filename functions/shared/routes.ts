import { app, type HttpFunctionOptions, type HttpMethod } from '@azure/functions';

/**
 * The connector's HTTP routes, as the function files register them, so the catch-all function can
 * tell a wrong method (405 with Allow) from a path nothing serves (404), both as OperationOutcomes.
 */
export interface RouteEntry {
  name: string;
  route: string;
  methods: HttpMethod[];
}

export const ROUTES: RouteEntry[] = [];

/** app.http, remembering the route. */
export function httpRoute(name: string, options: HttpFunctionOptions & { route: string; methods: HttpMethod[] }): void {
  ROUTES.push({ name, route: options.route, methods: options.methods });
  app.http(name, options);
}

/**
 * Matches a path (below /api, without the leading slash) against a route template: its parameters,
 * or undefined. Literal segments compare case-insensitively (as the host does); a parameter takes
 * one segment, which may be empty (the handler then says what is wrong with it); `{*rest}` takes
 * the rest. Segments are percent-decoded; a malformed escape matches nothing.
 */
export function matchRoute(route: string, path: string): Record<string, string> | undefined {
  const routeParts = route.split('/');
  const pathParts = path.replace(/^\/+/, '').split('/');
  const params: Record<string, string> = {};
  for (let i = 0; i < routeParts.length; i++) {
    const r = routeParts[i]!;
    const rest = /^\{\*(\w+)\}$/.exec(r);
    if (rest) {
      params[rest[1]!] = pathParts.slice(i).join('/');
      return params;
    }
    if (i >= pathParts.length) return undefined;
    let p: string;
    try {
      p = decodeURIComponent(pathParts[i]!);
    } catch {
      return undefined;
    }
    const m = /^\{(\w+)(?::[^}]*)?\??\}$/.exec(r);
    if (m) params[m[1]!] = p;
    else if (r.toLowerCase() !== p.toLowerCase()) return undefined;
  }
  return routeParts.length === pathParts.length ? params : undefined;
}

/** The methods the known routes allow on this path (empty when no route matches it). */
export function allowedMethods(path: string, routes: readonly RouteEntry[] = ROUTES): string[] {
  const methods = new Set<string>();
  for (const r of routes) if (!r.route.includes('{*') && matchRoute(r.route, path)) r.methods.forEach((m) => methods.add(m));
  return [...methods].sort();
}
