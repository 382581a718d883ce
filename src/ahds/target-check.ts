import type { AxiosInstance } from 'axios';
import { z } from 'zod';
import { UpstreamError } from '../http/errors';

const capabilitySchema = z.looseObject({
  resourceType: z.literal('CapabilityStatement'),
  fhirVersion: z.string().optional(),
  rest: z
    .array(z.looseObject({ resource: z.array(z.looseObject({ type: z.string(), versioning: z.string().optional() })).optional() }))
    .optional(),
});

/**
 * Reads the target's CapabilityStatement once before the first write and refuses, in one sentence,
 * a target this writer cannot serve: a FHIR version other than R4 (4.0.x), or a resource type it
 * writes kept under the `versioned-update` policy, where every update without If-Match is refused
 * with 400 (fhir-server SqlServerFhirDataStore; AHDS's versioning policy, per service or per type).
 */
export async function checkTarget(http: AxiosInstance, types: readonly string[], name = 'AHDS FHIR service'): Promise<void> {
  const response = await http.get('/metadata');
  const parsed = capabilitySchema.safeParse(response.data);
  if (!parsed.success)
    throw new UpstreamError(
      'ahds',
      'InvalidResponse',
      `${name} answered /metadata with something that is not a CapabilityStatement.`,
      response.status,
    );
  const version = parsed.data.fhirVersion;
  if (version !== undefined && !/^4\.0(\.\d+)?$/.test(version)) {
    throw new UpstreamError(
      'ahds',
      'InvalidResponse',
      `${name} speaks FHIR ${version.slice(0, 20)}, not R4 (4.0.x): point AHDS_FHIR_URL at an R4 service.`,
      response.status,
    );
  }
  const policies = new Map((parsed.data.rest ?? []).flatMap((r) => r.resource ?? []).map((r) => [r.type, r.versioning]));
  const strict = types.filter((t) => policies.get(t) === 'versioned-update');
  if (strict.length > 0) {
    throw new UpstreamError(
      'ahds',
      'InvalidResponse',
      `${name} keeps ${strict.join(' and ')} under the versioned-update policy, which refuses every update without If-Match: set the service's versioning policy for them to versioned or no-version.`,
      response.status,
    );
  }
}
