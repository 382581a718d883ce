/**
 * Test-side helpers for the OpenEMR stand-in: sign SMART Backend Services assertions (RS384 by
 * default, any claim overridable or removable), fetch tokens, and call the FHIR API over real HTTP.
 */
import { randomUUID } from 'node:crypto';
import { JWTPayload, KeyLike, SignJWT } from 'jose';
import type { OpenEmrStandIn } from '../../stack/openemr';

export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export interface AssertionOptions {
  clientId?: string;
  key?: KeyLike;
  alg?: string;
  kid?: string;
  /** Claims to set or override. */
  claims?: JWTPayload;
  /** Claims to leave out entirely. */
  omit?: Array<'iss' | 'sub' | 'aud' | 'jti' | 'exp' | 'iat'>;
}

/** Builds a client assertion whose times follow the stand-in's (movable) clock. */
export async function signAssertion(standIn: OpenEmrStandIn, opts: AssertionOptions = {}): Promise<string> {
  const clientId = opts.clientId ?? standIn.client.clientId;
  const now = Math.floor(standIn.store.now() / 1000);
  const claims: JWTPayload = {
    iss: clientId,
    sub: clientId,
    aud: standIn.audience,
    jti: randomUUID(),
    iat: now,
    exp: now + 300,
    ...opts.claims,
  };
  for (const name of opts.omit ?? []) delete claims[name];
  return new SignJWT(claims)
    .setProtectedHeader({ alg: opts.alg ?? 'RS384', typ: 'JWT', ...(opts.kid ? { kid: opts.kid } : {}) })
    .sign(opts.key ?? standIn.client.privateKey);
}

export interface HttpAnswer<T = any> {
  status: number;
  headers: Headers;
  text: string;
  body: T;
}

async function answer(res: Response): Promise<HttpAnswer> {
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    /* NDJSON or empty: keep the text */
  }
  return { status: res.status, headers: res.headers, text, body };
}

export async function postToken(standIn: OpenEmrStandIn, form: Record<string, string>): Promise<HttpAnswer> {
  const res = await fetch(standIn.tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
  return answer(res);
}

/** The standard client_credentials form around an assertion. */
export function assertionForm(assertion: string, scope?: string): Record<string, string> {
  return { grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: assertion, ...(scope ? { scope } : {}) };
}

export async function getAccessToken(standIn: OpenEmrStandIn, scope?: string, opts: AssertionOptions = {}): Promise<string> {
  const res = await postToken(standIn, assertionForm(await signAssertion(standIn, opts), scope));
  if (res.status !== 200) throw new Error(`token request failed: ${res.status} ${res.text}`);
  return res.body.access_token as string;
}

/** GET relative to the FHIR base (or an absolute URL). */
export async function fhirGet(
  standIn: OpenEmrStandIn,
  pathOrUrl: string,
  token?: string,
  headers: Record<string, string> = {},
): Promise<HttpAnswer> {
  const url = pathOrUrl.startsWith('http') ? pathOrUrl : `${standIn.fhirBaseUrl}${pathOrUrl}`;
  const res = await fetch(url, { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } });
  return answer(res);
}

export async function control(standIn: OpenEmrStandIn, method: string, path: string, body?: unknown): Promise<HttpAnswer> {
  const res = await fetch(`${standIn.baseUrl}/_control${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return answer(res);
}

/** Ids of a search bundle's entries, in order. */
export function entryIds(bundle: { entry?: Array<{ resource: { id: string } }> }): string[] {
  return (bundle.entry ?? []).map((e) => e.resource.id);
}
