/**
 * /_control: unauthenticated HTTP doors onto the control operations, for tests and the demo.
 * Never faulted and never counted, so they do not disturb what a test measures.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { OpenEmrStandInStore } from './control-operations';
import { faultProfileFromJson } from './fault-profile-json';
import { readJson } from './http-body';
import { NotFoundError } from './resource-store';
import { sendJson } from './openemr-responses';
import { formatLocalInstant, parseFhirDate } from './fhir-dates';
import type { ServerZone } from './server-zone';
import { FhirResource, isSupportedType } from './resource-shape';

/** A dateTime given to the control API (server local when it has no offset), as epoch seconds. */
function instantParam(value: string, zone: ServerZone): number {
  const parsed = parseFhirDate(value, zone.offsetNow());
  if (!parsed) throw new Error(`lastUpdated/at must be a FHIR dateTime or null, not ${value}`);
  return parsed.lo;
}

export async function handleControl(
  req: IncomingMessage,
  res: ServerResponse,
  segments: string[],
  ops: OpenEmrStandInStore,
  zone: ServerZone,
): Promise<void> {
  const method = req.method ?? 'GET';
  const [first, second, third] = segments;
  try {
    if (first === 'clock' && segments.length === 1) {
      if (method === 'POST') {
        const body = ((await readJson(req)) ?? {}) as { advanceSeconds?: unknown };
        const seconds = Number(body.advanceSeconds);
        if (!Number.isFinite(seconds) || seconds < 0) return sendJson(res, 400, { error: 'advanceSeconds must be a non-negative number' });
        const now = ops.advanceClock(seconds);
        return sendJson(res, 200, { now, epochMs: ops.now() });
      }
      if (method === 'GET')
        return sendJson(res, 200, { now: formatLocalInstant(Math.floor(ops.now() / 1000), zone.offsetNow()), epochMs: ops.now() });
    }
    if (first === 'clients' && second && (third === 'enable' || third === 'disable') && method === 'POST') {
      const ok = third === 'enable' ? ops.enableClient(second) : ops.disableClient(second);
      return ok ? sendJson(res, 200, { clientId: second, enabled: third === 'enable' }) : sendJson(res, 404, { error: 'unknown client' });
    }
    if (first === 'faults' && segments.length === 1) {
      if (method === 'PUT') {
        ops.setFaults(faultProfileFromJson(await readJson(req)));
        return sendJson(res, 200, { ok: true });
      }
    }
    if (first === 'stats' && segments.length === 1 && method === 'GET') return sendJson(res, 200, ops.stats());
    if (first === 'stats' && second === 'reset' && method === 'POST') {
      ops.resetStats();
      return sendJson(res, 200, { ok: true });
    }
    if (first === 'export-settings' && method === 'PUT') {
      ops.configureExport(((await readJson(req)) ?? {}) as Parameters<OpenEmrStandInStore['configureExport']>[0]);
      return sendJson(res, 200, { ok: true });
    }
    if (first === 'openemr-shapes' && segments.length === 1 && method === 'POST')
      return sendJson(res, 200, { added: ops.addOpenEmrShapes() });
    if (first === 'upgrade-artefact' && segments.length === 1 && method === 'POST') {
      const body = ((await readJson(req)) ?? {}) as { at?: unknown };
      return sendJson(res, 200, ops.upgradeArtefact(body.at === undefined ? {} : { atEpochSeconds: instantParam(String(body.at), zone) }));
    }
    if (first === 'lab-correction' && second && segments.length === 2 && method === 'POST') {
      const patch = (await readJson(req)) as Record<string, unknown> | undefined;
      return sendJson(res, 200, ops.labCorrection(second, patch));
    }
    if (first && isSupportedType(first) && second && segments.length === 2) {
      if (method === 'PUT') {
        const body = (await readJson(req)) as FhirResource | undefined;
        if (!body || typeof body !== 'object') return sendJson(res, 400, { error: 'body must be a resource' });
        if (body.resourceType !== undefined && body.resourceType !== first)
          return sendJson(res, 400, { error: `resourceType must be ${first}` });
        // ?lastUpdated=<dateTime> back-dates the row's date column; ?lastUpdated=null leaves it NULL.
        const raw = new URL(req.url ?? '/', 'http://control').searchParams.get('lastUpdated');
        const lastUpdated = raw === null ? undefined : raw === 'null' ? null : instantParam(raw, zone);
        const { resource, created } = ops.put({ ...body, resourceType: first, id: second }, { lastUpdated });
        return sendJson(res, created ? 201 : 200, resource);
      }
      if (method === 'DELETE')
        return ops.delete(first, second) ? sendJson(res, 200, { deleted: `${first}/${second}` }) : sendJson(res, 404, []);
      if (method === 'GET') {
        const found = ops.get(first, second);
        return found ? sendJson(res, 200, found) : sendJson(res, 404, []);
      }
    }
    return sendJson(res, 404, { error: 'unknown control route' });
  } catch (err) {
    if (err instanceof NotFoundError) return sendJson(res, 404, { error: err.message });
    return sendJson(res, 400, { error: (err as Error).message });
  }
}
