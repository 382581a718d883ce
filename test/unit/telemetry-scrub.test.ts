import { cleanMeasurements, MAX_PROPERTY_LENGTH, scrubProperties, scrubString, scrubValue } from '../../src/telemetry/scrub';
import { operationIdsFor } from '../../src/telemetry/appinsights';
import { ConfigError } from '../../src/config/load';
import { UpstreamError } from '../../src/http/errors';
import { DeadLetterStorageError, runFailureMessage } from '../../src/state/errors';

const JWT = 'eyJhbGciOiJSUzM4NCJ9.eyJzdWIiOiJjbGllbnQtMSJ9.c2lnbmF0dXJl';

describe('scrubString', () => {
  it('replaces a JWT wherever it appears', () => {
    const out = scrubString(`assertion ${JWT} was rejected`);
    expect(out).toBe('assertion [redacted-token] was rejected');
  });

  it('replaces a bearer token even when it is not a JWT', () => {
    expect(scrubString('Authorization: Bearer abc.def-123')).not.toContain('abc.def-123');
    expect(scrubString('header Bearer opaqueToken42')).toBe('header Bearer [redacted-token]');
  });

  it('replaces whole PEM blocks, also a truncated one without its END line', () => {
    const pem = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEF\n-----END PRIVATE KEY-----';
    expect(scrubString(`key: ${pem} end`)).toBe('key: [redacted-pem] end');
    expect(scrubString('-----BEGIN RSA PRIVATE KEY-----\nMIIEow')).toBe('[redacted-pem]');
  });

  it('replaces SSNs but leaves dates and times alone', () => {
    expect(scrubString('ssn 123-45-6789 seen')).toBe('ssn [redacted-ssn] seen');
    expect(scrubString('2024-05-01T00:00:00Z/2024-05-01T00:05:00Z')).toBe('2024-05-01T00:00:00Z/2024-05-01T00:05:00Z');
  });

  it('replaces token-like fields in form and JSON bodies', () => {
    expect(scrubString('client_assertion=abc123&grant_type=client_credentials')).toBe(
      'client_assertion=[redacted]&grant_type=client_credentials',
    );
    expect(scrubString('{"access_token":"opaque-xyz","expires_in":300}')).not.toContain('opaque-xyz');
  });

  it('drops query strings of URLs and request lines (search parameters carry patient data)', () => {
    expect(scrubString('GET /Patient?family=Smith&birthdate=1970-01-01')).toBe('GET /Patient?[redacted-query]');
    expect(scrubString('https://emr.example.org/apis/default/fhir/Patient?name=Smith failed')).toBe(
      'https://emr.example.org/apis/default/fhir/Patient?[redacted-query] failed',
    );
  });

  it('redacts FHIR name and demographic fields quoted from a resource', () => {
    const out = scrubString('{"name":[{"family":"Smith","given":["Ann","B"]}],"birthDate":"1970-01-01"}');
    expect(out).not.toMatch(/Smith|Ann|1970/);
    expect(out).toContain('"family":"[redacted]"');
  });

  it('redacts e-mail addresses', () => {
    expect(scrubString('contact ann@example.org')).toBe('contact [redacted-email]');
  });

  it('truncates long strings with a marker and respects the limit', () => {
    const out = scrubString('x'.repeat(5000));
    expect(out.length).toBe(MAX_PROPERTY_LENGTH);
    expect(out.endsWith('...[truncated]')).toBe(true);
    expect(scrubString('abcdef', 5).length).toBeLessThanOrEqual(5);
  });

  it('is idempotent', () => {
    const once = scrubString(`Bearer ${JWT} GET /Patient?name=X ssn 123-45-6789 password=hunter2`);
    expect(scrubString(once)).toBe(once);
  });
});

describe('scrubProperties and scrubValue', () => {
  it('redacts values of secret-named keys whole and drops undefined values', () => {
    expect(scrubProperties({ clientSecret: 'not-a-pattern', Authorization: 'x', side: 'ahds', missing: undefined })).toEqual({
      clientSecret: '[redacted]',
      Authorization: '[redacted]',
      side: 'ahds',
    });
  });

  it('stringifies numbers, booleans, errors and objects and scrubs the result', () => {
    expect(scrubValue(422)).toBe('422');
    expect(scrubValue(true)).toBe('true');
    expect(scrubValue(new Error(`bad ${JWT}`))).toBe('Error: bad [redacted-token]');
    expect(scrubValue({ family: 'Smith' })).toBe('{"family":"[redacted]"}');
  });

  it('keeps finite measurements only', () => {
    expect(cleanMeasurements({ a: 1, b: Number.NaN, c: Infinity, d: undefined, e: 0 })).toEqual({ a: 1, e: 0 });
  });
});

describe('operationIdsFor', () => {
  it('takes trace id and parent span id from a W3C traceparent', () => {
    expect(operationIdsFor('00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01')).toMatchObject({
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
    });
  });

  it('uses the hex digits of an invocation GUID as the operation id', () => {
    const ids = operationIdsFor('c6a3f4a2-1b2c-4d5e-8f90-1234567890ab');
    expect(ids.traceId).toBe('c6a3f4a21b2c4d5e8f901234567890ab');
    expect(ids.spanId).toMatch(/^[0-9a-f]{16}$/);
  });

  it('hashes anything else to a stable, valid trace id', () => {
    const a = operationIdsFor('cli-run-1');
    expect(a.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(operationIdsFor('cli-run-1')).toEqual(a);
    expect(operationIdsFor('cli-run-2').traceId).not.toBe(a.traceId);
  });
});

describe('runFailureMessage', () => {
  it('says why a run failed without repeating secrets or patient data from an unexpected error', () => {
    const out = runFailureMessage(new TypeError(`cannot read "Quillfeather" of 987-65-4321 with ${JWT}`));
    expect(out).toMatch(/^TypeError: /);
    for (const secret of ['Quillfeather', '987-65-4321', JWT]) expect(out).not.toContain(secret);
  });

  it("passes the project's own messages through: settings, upstream sides, run errors", () => {
    expect(runFailureMessage(new ConfigError('OPENEMR_SITE', 'OPENEMR_SITE must be set.'))).toBe('OPENEMR_SITE must be set.');
    expect(runFailureMessage(new UpstreamError('ahds', 'Throttled', 'AHDS FHIR service answered 429.', 429))).toBe(
      'AHDS FHIR service answered 429.',
    );
    expect(runFailureMessage(new DeadLetterStorageError(2))).toBe(
      '2 dead letter(s) could not be stored; the watermark was not advanced. Try again later.',
    );
  });
});
