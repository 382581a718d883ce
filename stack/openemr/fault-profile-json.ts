import type { FaultProfile } from '../faults';

/** A FaultProfile arriving as JSON carries exemptPaths as strings; FaultInjector wants RegExps. */
export function faultProfileFromJson(body: unknown): FaultProfile {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw new Error('fault profile must be a JSON object');
  const raw = body as Record<string, unknown> & { exemptPaths?: unknown };
  const profile = { ...raw } as FaultProfile;
  if (raw.exemptPaths !== undefined) {
    if (!Array.isArray(raw.exemptPaths)) throw new Error('exemptPaths must be an array of regular expressions');
    profile.exemptPaths = raw.exemptPaths.map((p) => (p instanceof RegExp ? p : new RegExp(String(p))));
  }
  return profile;
}
