import { createHash } from 'node:crypto';

/**
 * Canonical JSON: object keys sorted (resourceType and id first), arrays kept in order, no
 * whitespace. The same content always gives the same bytes, whatever key order the source used, so
 * a re-sync PUTs byte-identical resources and AHDS creates no new version.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => sortKeys(v)) as unknown as T;
  if (value === null || typeof value !== 'object') return value;
  const input = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(input).sort(compareKeys)) {
    const v = input[key];
    if (v !== undefined) out[key] = sortKeys(v);
  }
  return out as T;
}

const FIRST_KEYS = ['resourceType', 'id'];

function compareKeys(a: string, b: string): number {
  const ia = FIRST_KEYS.indexOf(a);
  const ib = FIRST_KEYS.indexOf(b);
  if (ia !== -1 || ib !== -1) return (ia === -1 ? 99 : ia) - (ib === -1 ? 99 : ib);
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Content hash of a resource without its meta.versionId/lastUpdated (which the server owns). */
export function contentHash(resource: object): string {
  return createHash('sha256')
    .update(canonicalJson(withoutServerMeta(resource)))
    .digest('base64url');
}

/** The resource as a FHIR server compares it: meta.versionId and lastUpdated removed, an empty meta dropped. */
export function withoutServerMeta<T extends object>(resource: T): T {
  const meta = (resource as { meta?: Record<string, unknown> }).meta;
  if (!meta) return resource;
  const { versionId: _v, lastUpdated: _l, ...rest } = meta;
  const copy = { ...resource } as T & { meta?: Record<string, unknown> };
  if (Object.keys(rest).length === 0) delete copy.meta;
  else copy.meta = rest;
  return copy;
}
