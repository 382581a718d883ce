/**
 * Last line of defence before anything reaches Application Insights. The core already avoids
 * putting secrets and patient data into telemetry; this catches what slips through anyway (an error
 * message quoting a response body, a URL with a search string, a header echoed back).
 *
 * Rules, applied to every property value (and key):
 * - PEM blocks (private keys, certificates) -> [redacted-pem]
 * - JWTs / bearer tokens (eyJ...) and "Bearer <anything>" -> [redacted-token]
 * - values of token-ish fields in query strings, JSON or form bodies (access_token=, "client_assertion": ...)
 * - US SSNs (ddd-dd-dddd) -> [redacted-ssn]
 * - query strings of URLs (search parameters such as family=, name=, birthdate= carry patient data)
 * - FHIR HumanName / demographics fragments in JSON ("family": ..., "given": [...], "birthDate": ...)
 * - e-mail addresses
 * - anything longer than the limit is cut, with a marker.
 * Properties whose key itself names a secret (password, secret, token, authorization, private key)
 * are replaced whole.
 */

export const MAX_PROPERTY_LENGTH = 1024;
const MAX_KEY_LENGTH = 150;

const PEM = /-----BEGIN [A-Z0-9 ]+-----[\s\S]*?(?:-----END [A-Z0-9 ]+-----|$)/g;
const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi;
const JWT = /\beyJ[A-Za-z0-9_-]{2,}(?:\.[A-Za-z0-9_-]*){0,2}/g;
const SECRET_FIELD =
  /((?:access_token|refresh_token|id_token|client_assertion|client_secret|password|secret|api[_-]?key|private[_-]?key|authorization)["']?\s*[:=]\s*["']?)([^"'&\s,;}]+)/gi;
const SSN = /\b\d{3}-\d{2}-\d{4}\b/g;
const URL_QUERY = /((?:https?:\/\/)?[A-Za-z0-9.-]*(?::\d+)?\/[^\s?#"'<>]*)\?[^\s#"'<>]+/g;
const HUMAN_NAME_JSON =
  /("(?:family|given|prefix|suffix|birthDate|line|postalCode|telecom|text|display|valueString)"\s*:\s*)("(?:[^"\\]|\\.)*"|\[[^\]]*\])/g;
const EMAIL = /\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b/g;

const SECRET_KEY = /pass(word)?|secret|token|authori[sz]ation|assertion|private.?key|api.?key|cookie|ssn/i;

/** Cleans one string. Idempotent: scrubbing a scrubbed string changes nothing. */
export function scrubString(value: string, maxLength = MAX_PROPERTY_LENGTH): string {
  let s = value
    .replace(PEM, '[redacted-pem]')
    .replace(BEARER, '$1 [redacted-token]')
    .replace(JWT, '[redacted-token]')
    .replace(SECRET_FIELD, '$1[redacted]')
    .replace(URL_QUERY, '$1?[redacted-query]')
    .replace(HUMAN_NAME_JSON, '$1"[redacted]"')
    .replace(SSN, '[redacted-ssn]')
    .replace(EMAIL, '[redacted-email]');
  if (s.length > maxLength) {
    const marker = '...[truncated]';
    s = maxLength > marker.length * 2 ? s.slice(0, maxLength - marker.length) + marker : s.slice(0, maxLength);
  }
  return s;
}

/** Turns anything into a scrubbed string; undefined and null become undefined (the property is dropped). */
export function scrubValue(value: unknown, maxLength = MAX_PROPERTY_LENGTH): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return scrubString(value, maxLength);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value instanceof Error) return scrubString(`${value.name}: ${value.message}`, maxLength);
  try {
    return scrubString(JSON.stringify(value), maxLength);
  } catch {
    return '[unserialisable]';
  }
}

/** Scrubs every key and value of a property bag; drops empty values; redacts secret-named keys whole. */
export function scrubProperties(properties: Record<string, unknown> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!properties) return out;
  for (const [rawKey, rawValue] of Object.entries(properties)) {
    const key = scrubString(rawKey, MAX_KEY_LENGTH);
    const value = scrubValue(rawValue);
    if (value === undefined) continue;
    out[key] = SECRET_KEY.test(rawKey) ? '[redacted]' : value;
  }
  return out;
}

/** Keeps finite numbers only (NaN and Infinity break the ingestion schema). */
export function cleanMeasurements(measurements: Record<string, number | undefined>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(measurements)) {
    if (typeof value === 'number' && Number.isFinite(value)) out[key] = value;
  }
  return out;
}
