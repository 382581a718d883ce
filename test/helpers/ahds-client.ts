/** Small HTTP client for the AHDS stand-in tests: a real token from the Entra stand-in, then fetch. */
import { ClientSecretCredential } from '@azure/identity';
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import type { AhdsStandIn } from '../../stack/ahds';

export interface AhdsResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export interface AhdsTestClient {
  token: string;
  request<T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<AhdsResponse<T>>;
  put<T = any>(resource: Resource, headers?: Record<string, string>): Promise<AhdsResponse<T>>;
  bundle(type: 'batch' | 'transaction', entries: BundleEntry[], headers?: Record<string, string>): Promise<AhdsResponse<Bundle>>;
}

export async function tokenFor(ahds: AhdsStandIn, client: { clientId: string; clientSecret: string } = ahds.entra): Promise<string> {
  const credential = new ClientSecretCredential(ahds.entra.tenantId, client.clientId, client.clientSecret, {
    authorityHost: ahds.entra.authorityHost,
    disableInstanceDiscovery: true,
  });
  const t = await credential.getToken(`${ahds.audience}/.default`);
  return t.token;
}

export async function ahdsClient(ahds: AhdsStandIn, token?: string): Promise<AhdsTestClient> {
  const bearer = token ?? (await tokenFor(ahds));
  const request = async <T = any>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<AhdsResponse<T>> => {
    const url = path.startsWith('http') ? path : `${ahds.fhirUrl}${path.startsWith('/') ? '' : '/'}${path}`;
    const res = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${bearer}`,
        accept: 'application/fhir+json',
        ...(body !== undefined ? { 'content-type': 'application/fhir+json' } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
  };
  return {
    token: bearer,
    request,
    put: (resource, headers) => request('PUT', `/${resource.resourceType}/${resource.id}`, resource, headers),
    bundle: (type, entries, headers) => request<Bundle>('POST', '/', { resourceType: 'Bundle', type, entry: entries }, headers),
  };
}

/** A valid Patient. */
export function patient(id: string, family = 'Smith'): Resource {
  return { resourceType: 'Patient', id, name: [{ family, given: ['Ann'] }], gender: 'female', birthDate: '1980-02-03' };
}

/** A valid Observation (heart rate) for a patient. */
export function observation(id: string, patientId: string, value = 72): Resource {
  return {
    resourceType: 'Observation',
    id,
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
    subject: { reference: `Patient/${patientId}` },
    effectiveDateTime: '2024-01-01T10:00:00Z',
    valueQuantity: { value, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
  } as Resource;
}

export function putEntry(resource: Resource): BundleEntry {
  return { resource, request: { method: 'PUT', url: `${resource.resourceType}/${resource.id}` } };
}
