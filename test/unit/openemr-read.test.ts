import type { Config } from '../../src/config/load';
import { BulkExportClient } from '../../src/openemr/bulk-export';
import { OpenEmrReader } from '../../src/openemr/reader';
import { phpDateTimeToIso } from '../../src/openemr/schemas';
import { NoopTelemetry } from '../../src/telemetry/telemetry';

const connection = { fhirBaseUrl: 'https://emr.example.org/openemr/apis/default/fhir' } as Config['openemr'];
const http = { timeoutMs: 1000, retry: { maxAttempts: 1, baseDelayMs: 0, maxDelayMs: 0, maxTotalMs: 0 } };
const reader = new OpenEmrReader(connection, http, { getToken: async () => 't', invalidate: () => undefined }, new NoopTelemetry());
const exporter = new BulkExportClient(reader);

describe('export URLs: the token stays on the configured FHIR base', () => {
  test('a URL under the FHIR base path on the site_addr_oath origin (http behind TLS offload) is fetched from the configured base', () => {
    expect(exporter.onBase('http://10.0.0.5/openemr/apis/default/fhir/Binary/7')).toEqual({ onBase: true, path: '/Binary/7' });
    expect(exporter.onBase('https://emr.example.org/openemr/apis/default/fhir/$bulkdata-status?job=abc')).toEqual({
      onBase: true,
      path: '/$bulkdata-status?job=abc',
    });
    expect(exporter.onBase('/openemr/apis/default/fhir/Binary/8')).toEqual({ onBase: true, path: '/Binary/8' });
  });

  test('any other path or origin is foreign', () => {
    expect(exporter.onBase('https://files.example.net/openemr/apis/other/fhir/Binary/7')).toEqual({
      onBase: false,
      url: 'https://files.example.net/openemr/apis/other/fhir/Binary/7',
    });
    expect(exporter.onBase('https://emr.example.org/openemr/apis/default/fhirX/Binary/7')).toMatchObject({ onBase: false });
  });
});

describe('transactionTime as OpenEMR writes it (a serialised PHP DateTime)', () => {
  test('offset, UTC, zone name (DST-aware) and plain strings', () => {
    expect(phpDateTimeToIso({ date: '2026-12-01 10:00:00.000000', timezone: '-05:00' })).toBe('2026-12-01T15:00:00.000Z');
    expect(phpDateTimeToIso({ date: '2026-12-01 10:00:00.000000', timezone: 'UTC' })).toBe('2026-12-01T10:00:00.000Z');
    expect(phpDateTimeToIso({ date: '2026-07-01 10:00:00.000000', timezone: 'America/New_York' })).toBe('2026-07-01T14:00:00.000Z');
    expect(phpDateTimeToIso({ date: '2026-12-01 10:00:00.000000', timezone: 'America/New_York' })).toBe('2026-12-01T15:00:00.000Z');
    expect(phpDateTimeToIso('2026-12-01T10:00:00-05:00')).toBe('2026-12-01T15:00:00.000Z');
    expect(phpDateTimeToIso({ date: 'yesterday' })).toBeUndefined();
  });
});

describe('export settings', () => {
  test('a kick-off timeout below 150 s stops start-up with a sentence naming the setting (OpenEMR answers the kick-off after up to 2 minutes of work)', async () => {
    const { loadConfig } = await import('../../src/config/load');
    const { makeRsaKey } = await import('../helpers/keys');
    const { pem } = await makeRsaKey();
    const env = {
      OPENEMR_BASE_URL: 'https://emr.example.org',
      OPENEMR_CLIENT_ID: 'c',
      OPENEMR_PRIVATE_KEY: pem,
      AHDS_FHIR_URL: 'https://x.fhir.azurehealthcareapis.com',
      AzureWebJobsStorage: 'UseDevelopmentStorage=true',
    };
    expect(() => loadConfig({ ...env, OPENEMR_EXPORT_KICKOFF_TIMEOUT_MS: '30000' })).toThrow(/OPENEMR_EXPORT_KICKOFF_TIMEOUT_MS/);
    expect(loadConfig(env).openemrRead).toEqual({
      exportEnabled: true,
      exportKickoffTimeoutMs: 180_000,
      exportDownloadTimeoutMs: 1_800_000,
      exportGapSeconds: 86_400,
      observationSpanSeconds: 86_400,
      reconcileSource: 'search',
    });
  });
});
