import { DEFAULT_RESOURCE_TYPES, specOf } from '../sync/resource-types';

/**
 * Scopes that make large gaps cheaper but are not needed: without them OpenEMR drops them silently
 * and the connector reads by search instead.
 */
export const OPTIONAL_SCOPES = ['system/*.$export', 'system/*.$bulkdata-status', 'system/Binary.read'] as const;

/** The SMART v1 read scope of each type, in the order given (resource-types.ts, read.scope). */
export function readScopesOf(types: readonly string[]): string[] {
  return types.map((t) => specOf(t).read.scope);
}

/** What OPENEMR_SCOPES defaults to for these types: a read scope per type, then the bulk export scopes. */
export function defaultScopesFor(types: readonly string[]): string {
  return [...readScopesOf(types), ...OPTIONAL_SCOPES].join(' ');
}

/** The default for the types carried when SYNC_RESOURCE_TYPES is not set. */
export const DEFAULT_SCOPES = defaultScopesFor(DEFAULT_RESOURCE_TYPES.split(','));

/**
 * Does this scope let a system client search the type? SMART v1 `system/T.read` (or `system/*.read`,
 * or `.*`, read and write), SMART v2 `system/T.rs` and any `.cruds` subset holding both r and s.
 */
export function scopeReads(scope: string, type: string): boolean {
  const match = /^system\/([A-Za-z]+|\*)\.(read|\*|c?r?u?d?s?)$/.exec(scope);
  if (!match || (match[1] !== type && match[1] !== '*')) return false;
  const permission = match[2]!;
  return permission === 'read' || permission === '*' || (permission.includes('r') && permission.includes('s'));
}

/** The types (in the order given) none of these scopes lets the client search. */
export function typesWithoutReadScope(scopes: string, types: readonly string[]): string[] {
  const list = scopes.split(/\s+/).filter(Boolean);
  return types.filter((type) => !list.some((s) => scopeReads(s, type)));
}
