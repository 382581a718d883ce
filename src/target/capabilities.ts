import type { AxiosInstance } from 'axios';
import { z } from 'zod';
import { UpstreamError } from '../http/errors';

/**
 * What the writer needs to know of a FHIR R4 target, read from its CapabilityStatement (/metadata)
 * and parsed at the boundary. Nothing here is AHDS-specific: AHDS's own traits (500 entries per
 * bundle, the processing-logic and audit headers) live with TARGET_KIND=ahds.
 */
export interface TargetCapabilities {
  fhirVersion: string;
  software?: { name: string; version?: string };
  /** Advertised system interactions. */
  batch: boolean;
  transaction: boolean;
  /** Per type the sync writes: can PUT create (client-assigned ids), update, delete; versioning policy. */
  types: Record<
    string,
    { updateCreate?: boolean; update: boolean; delete: boolean; versioning?: 'no-version' | 'versioned' | 'versioned-update' }
  >;
}

const capabilitySchema = z.object({
  resourceType: z.literal('CapabilityStatement'),
  fhirVersion: z.string(),
  software: z.object({ name: z.string(), version: z.string().optional() }).optional(),
  rest: z
    .array(
      z.object({
        mode: z.string().optional(),
        interaction: z.array(z.object({ code: z.string() })).optional(),
        resource: z
          .array(
            z.object({
              type: z.string(),
              interaction: z.array(z.object({ code: z.string() })).optional(),
              updateCreate: z.boolean().optional(),
              versioning: z.enum(['no-version', 'versioned', 'versioned-update']).optional(),
            }),
          )
          .optional(),
      }),
    )
    .min(1),
});

/** Parses a CapabilityStatement; throws UpstreamError (InvalidResponse) for anything else or not R4. */
export function parseCapabilities(body: unknown): TargetCapabilities {
  const parsed = capabilitySchema.safeParse(body);
  if (!parsed.success)
    throw new UpstreamError('ahds', 'InvalidResponse', 'The target answered /metadata with something that is not a CapabilityStatement.');
  const cs = parsed.data;
  if (!cs.fhirVersion.startsWith('4.0'))
    throw new UpstreamError(
      'ahds',
      'InvalidResponse',
      `The target speaks FHIR ${cs.fhirVersion.replace(/[^0-9.]/g, '').slice(0, 12)}; the connector writes R4 (4.0.x).`,
    );
  const server = cs.rest.find((r) => r.mode === 'server') ?? cs.rest[0]!;
  const system = new Set((server.interaction ?? []).map((i) => i.code));
  const types: TargetCapabilities['types'] = {};
  for (const r of server.resource ?? []) {
    const codes = new Set((r.interaction ?? []).map((i) => i.code));
    types[r.type] = { updateCreate: r.updateCreate, update: codes.has('update'), delete: codes.has('delete'), versioning: r.versioning };
  }
  return { fhirVersion: cs.fhirVersion, software: cs.software, batch: system.has('batch'), transaction: system.has('transaction'), types };
}

export async function fetchCapabilities(http: AxiosInstance): Promise<TargetCapabilities> {
  const response = await http.get('/metadata');
  return parseCapabilities(response.data);
}

/** How the writer groups writes for this target, and why (for the start-up line and the docs). */
export interface WritePlan {
  bundles: 'batch' | 'single';
  reason: string;
}

/**
 * Batch bundles when the server lists `batch`; HAPI FHIR lists only `transaction` in its
 * CapabilityStatement yet answers `batch` bundles with batch-response (pinned by test/hapi), so HAPI
 * is recognised by its software name. Anything else gets one PUT per resource: a transaction would
 * make one bad resource fail all the others.
 */
export function planWrites(caps: TargetCapabilities, setting: 'auto' | 'batch' | 'single'): WritePlan {
  if (setting !== 'auto') return { bundles: setting, reason: `TARGET_BUNDLES=${setting}` };
  if (caps.batch) return { bundles: 'batch', reason: 'the CapabilityStatement lists batch' };
  if (/hapi/i.test(caps.software?.name ?? ''))
    return { bundles: 'batch', reason: 'HAPI FHIR accepts batch bundles (it lists only transaction)' };
  return { bundles: 'single', reason: 'the CapabilityStatement lists no batch interaction' };
}

/**
 * What the sync needs that the target must offer: PUT that creates with the client's id (the
 * connector keeps OpenEMR's ids) and update, for every type written. Returns the problems, empty when
 * fine. updateCreate counts only when stated false: HAPI FHIR leaves it out and creates by PUT all the same.
 */
export function missingCapabilities(caps: TargetCapabilities, types: readonly string[]): string[] {
  const problems: string[] = [];
  for (const type of types) {
    const t = caps.types[type];
    if (!t) problems.push(`${type} is not supported`);
    else {
      if (!t.update) problems.push(`${type} has no update interaction`);
      if (t.updateCreate === false) problems.push(`${type} cannot be created by PUT with the client's id (updateCreate)`);
    }
  }
  return problems;
}
