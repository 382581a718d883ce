import { loadConfig } from '../../src/config/load';
import { envSchema, SETTINGS } from '../../src/config/schema';
import { OPTIONAL_SCOPES } from '../../src/openemr/scopes';
import { KNOWN_RESOURCE_TYPES, RESOURCE_TYPES, specOf } from '../../src/sync/resource-types';
import { makeRsaKey } from '../helpers/keys';
import { configError, minimalSettings } from '../helpers/settings';

let pem: string;
let jwk: object;
beforeAll(async () => {
  ({ pem, jwk } = await makeRsaKey());
});

const env = (overrides: Record<string, string | undefined> = {}): NodeJS.ProcessEnv => minimalSettings(pem, overrides);

describe('configuration', () => {
  test('a complete configuration derives the OpenEMR FHIR base and token URLs from root and site', () => {
    const config = loadConfig(env({ OPENEMR_SITE: 'clinic2' }));
    expect(config.openemr.fhirBaseUrl).toBe('https://emr.example.org/apis/clinic2/fhir');
    expect(config.openemr.tokenUrl).toBe('https://emr.example.org/oauth2/clinic2/token');
    expect(config.ahds.audience).toBe('https://ws-fhir.fhir.azurehealthcareapis.com');
    expect(config.ahds.batchSize).toBe(200);
  });

  test('a missing required setting stops start-up with one sentence naming it', () => {
    const error = configError(env({ AHDS_FHIR_URL: undefined }));
    expect(error.setting).toBe('AHDS_FHIR_URL');
    expect(error.message).toMatch(/^Setting AHDS_FHIR_URL is required/);
    expect(error.message.trim().split(/(?<=\.)\s+(?=[A-Z])/)).toHaveLength(1);
  });

  test('an empty setting counts as missing', () => {
    expect(configError(env({ OPENEMR_CLIENT_ID: '  ' })).setting).toBe('OPENEMR_CLIENT_ID');
  });

  test('a non-loopback http URL is rejected: only https leaves the machine', () => {
    const error = configError(env({ OPENEMR_BASE_URL: 'http://emr.example.org' }));
    expect(error.setting).toBe('OPENEMR_BASE_URL');
    expect(error.message).toContain('https');
  });

  test('http is allowed for loopback addresses (the local stack)', () => {
    expect(loadConfig(env({ OPENEMR_BASE_URL: 'http://127.0.0.1:8080', AHDS_FHIR_URL: 'http://localhost:9090' })).openemr.baseUrl).toBe(
      'http://127.0.0.1:8080',
    );
  });

  test('a malformed number names the setting and the expected range', () => {
    const error = configError(env({ AHDS_BATCH_SIZE: '900' }));
    expect(error.setting).toBe('AHDS_BATCH_SIZE');
    expect(error.message).toContain('1 to 500');
  });

  test('a client-secret-only OpenEMR configuration is rejected with an explanation', () => {
    const error = configError(env({ OPENEMR_PRIVATE_KEY: undefined, OPENEMR_CLIENT_SECRET: 'not-the-way' }));
    expect(error.setting).toBe('OPENEMR_CLIENT_SECRET');
    expect(error.message).toMatch(/signed JWT assertion/);
    expect(error.message).not.toContain('not-the-way');
  });

  test('a private key that is not an RSA key is rejected without echoing it', () => {
    const error = configError(env({ OPENEMR_PRIVATE_KEY: 'secret-garbage-value' }));
    expect(error.setting).toBe('OPENEMR_PRIVATE_KEY');
    expect(error.message).not.toContain('secret-garbage-value');
  });

  test('the private key may be given as JWK JSON or as PEM with escaped newlines', () => {
    expect(loadConfig(env({ OPENEMR_PRIVATE_KEY: JSON.stringify(jwk) })).openemr.privateKey).toContain('"kty"');
    expect(() => loadConfig(env({ OPENEMR_PRIVATE_KEY: pem.replace(/\n/g, '\\n') }))).not.toThrow();
  });

  test('client-secret Azure auth needs tenant, client id and secret', () => {
    expect(configError(env({ AZURE_AUTH_MODE: 'client-secret', AZURE_TENANT_ID: 't', AZURE_CLIENT_ID: 'c' })).setting).toBe(
      'AZURE_CLIENT_SECRET',
    );
  });

  test('de-identification needs a key of at least 32 characters', () => {
    expect(configError(env({ DEID_MODE: 'on', DEID_KEY: 'short' })).setting).toBe('DEID_KEY');
  });

  test('SYNC_RESOURCE_TYPES puts the directory (Organization, Practitioner, then Location, which points at an Organization) before Patient; a directory type alone beside Patient is accepted', () => {
    expect(loadConfig(env({ SYNC_RESOURCE_TYPES: 'Encounter,Location,Patient,Practitioner,Organization' })).sync.resourceTypes).toEqual([
      'Organization',
      'Practitioner',
      'Location',
      'Patient',
      'Encounter',
    ]);
    // Location's managingOrganization then follows MAPPING_UNCARRIED_REFERENCES (test/unit/mapping-directory.test.ts).
    expect(loadConfig(env({ SYNC_RESOURCE_TYPES: 'Patient,Location' })).sync.resourceTypes).toEqual(['Location', 'Patient']);
  });

  test('an unknown enum value lists the allowed ones', () => {
    const error = configError(env({ RECONCILE_DELETE_MODE: 'purge' }));
    expect(error.message).toBe('Setting RECONCILE_DELETE_MODE must be report-only or delete.');
  });

  test('SYNC_RESOURCE_TYPES takes known types in any order, keeps them in reference order, and needs Patient', () => {
    expect(loadConfig(env({ SYNC_RESOURCE_TYPES: 'Observation, Condition,Patient,Encounter' })).sync.resourceTypes).toEqual([
      'Patient',
      'Encounter',
      'Condition',
      'Observation',
    ]);
    expect(
      loadConfig(env({ SYNC_RESOURCE_TYPES: 'AllergyIntolerance,Immunization,Patient,MedicationRequest,Procedure' })).sync.resourceTypes,
    ).toEqual(['Patient', 'Immunization', 'Procedure', 'MedicationRequest', 'AllergyIntolerance']);
    expect(KNOWN_RESOURCE_TYPES).toEqual(
      expect.arrayContaining(['Patient', 'Encounter', 'Condition', 'Observation', 'DiagnosticReport', 'DocumentReference']),
    );
    // Unset: every row of the table carried by default, in reference order.
    expect(loadConfig(env()).sync.resourceTypes).toEqual(
      [...RESOURCE_TYPES]
        .filter((t) => t.carriedByDefault)
        .sort((a, b) => a.rank - b.rank)
        .map((t) => t.type),
    );
    expect(loadConfig(env()).sync.resourceTypes).toEqual(expect.arrayContaining(['Patient', 'Encounter', 'Condition', 'Observation']));
    expect(configError(env({ SYNC_RESOURCE_TYPES: 'Patient,Specimen' })).message).toBe(
      `Setting SYNC_RESOURCE_TYPES must be a comma-separated list of ${KNOWN_RESOURCE_TYPES.join(', ')}.`,
    );
    expect(configError(env({ SYNC_RESOURCE_TYPES: 'Observation' })).message).toBe(
      'Setting SYNC_RESOURCE_TYPES must include Patient (every other type points at it).',
    );
  });

  test('OPENEMR_SCOPES unset: a read scope per carried type and the bulk export scopes', () => {
    expect(loadConfig(env({ SYNC_RESOURCE_TYPES: 'Patient,Condition' })).openemr.scopes).toBe(
      'system/Patient.read system/Condition.read system/*.$export system/*.$bulkdata-status system/Binary.read',
    );
    const all = loadConfig(env()).sync.resourceTypes;
    expect(loadConfig(env()).openemr.scopes.split(' ')).toEqual([...all.map((t) => specOf(t).read.scope), ...OPTIONAL_SCOPES]);
  });

  test('an explicit OPENEMR_SCOPES must let the client search every carried type: one sentence names the setting and the missing scope', () => {
    expect(
      configError(
        env({ SYNC_RESOURCE_TYPES: 'Patient,Encounter,Observation', OPENEMR_SCOPES: 'system/Patient.read system/Observation.rs' }),
      ).message,
    ).toBe(
      'Setting OPENEMR_SCOPES lacks system/Encounter.read (or the .rs form from OpenEMR 7.0.4): SYNC_RESOURCE_TYPES carries Encounter, and OpenEMR answers a search without its scope with 401.',
    );
    // v1, v2 (any cruds holding r and s) and wildcard scopes all count; export scopes do not.
    for (const scopes of [
      'system/Patient.rs system/Encounter.cruds',
      'system/*.read',
      'system/*.rs',
      'system/Patient.read system/Encounter.*',
    ]) {
      expect(loadConfig(env({ SYNC_RESOURCE_TYPES: 'Patient,Encounter', OPENEMR_SCOPES: scopes })).openemr.scopes).toBe(scopes);
    }
    expect(configError(env({ SYNC_RESOURCE_TYPES: 'Patient', OPENEMR_SCOPES: 'system/*.$export system/Patient.r' })).setting).toBe(
      'OPENEMR_SCOPES',
    );
  });

  test('storage is required, by connection string or account name', () => {
    expect(configError(env({ AzureWebJobsStorage__accountName: undefined })).setting).toBe('AzureWebJobsStorage');
  });

  test('the default each setting documents is the default it gets', () => {
    const raw = envSchema.parse(env()) as Record<string, unknown>;
    const shown = (v: unknown) => (Array.isArray(v) ? v.join(',') : v instanceof Date ? v.toISOString() : String(v));
    const defaults = SETTINGS.filter((s) => s.default !== undefined);
    expect(defaults.length).toBeGreaterThan(20);
    for (const s of defaults) expect([s.name, shown(raw[s.name])]).toEqual([s.name, s.default]);
  });

  test('every documented setting is unique and described', () => {
    const names = SETTINGS.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    for (const s of SETTINGS) expect(s.description.length).toBeGreaterThan(10);
  });
});

describe('setting errors name the real cause', () => {
  test('an unresolved Key Vault reference is reported as such, for any setting, with the secret name and never the vault URL', () => {
    const e = configError(
      env({ OPENEMR_PRIVATE_KEY: '@Microsoft.KeyVault(SecretUri=https://kv-abc123.vault.azure.net/secrets/openemr-private-key/)' }),
    );
    expect(e.setting).toBe('OPENEMR_PRIVATE_KEY');
    expect(e.message).toMatch(
      /^Setting OPENEMR_PRIVATE_KEY is a Key Vault reference that was not resolved \(secret openemr-private-key\): .*Key Vault Secrets User/,
    );
    expect(e.message).not.toContain('kv-abc123');
    expect(configError(env({ OPENEMR_CLIENT_ID: '@Microsoft.KeyVault(VaultName=kv;SecretName=openemr-client-id)' })).message).toMatch(
      /^Setting OPENEMR_CLIENT_ID is a Key Vault reference that was not resolved \(secret openemr-client-id\)/,
    );
  });

  test('SYNC_INITIAL_SINCE is a strict date or instant (no roll-over, nothing after it)', () => {
    for (const bad of ['2021-02-29', '2020-13-01T00:00:00Z', '2020-01-01T00:00:00Z junk', 'January 1 2020']) {
      expect(configError(env({ SYNC_INITIAL_SINCE: bad })).setting).toBe('SYNC_INITIAL_SINCE');
    }
    expect(loadConfig(env({ SYNC_INITIAL_SINCE: '2020-02-29' })).sync.initialSince).toBe('2020-02-29T00:00:00.000Z');
    expect(loadConfig(env({ SYNC_INITIAL_SINCE: '2020-01-01T02:00:00+02:00' })).sync.initialSince).toBe('2020-01-01T00:00:00.000Z');
  });

  test('the cloud role of telemetry is the Function App name the platform sets', () => {
    expect(loadConfig(env({ WEBSITE_SITE_NAME: 'func-fhirsync-prod' })).telemetry.cloudRole).toBe('func-fhirsync-prod');
    expect(loadConfig(env()).telemetry.cloudRole).toBeUndefined();
  });
});

describe('AHDS preflight sentences', () => {
  const auth = { mode: 'client-secret' as const, disableInstanceDiscovery: true, authorityHost: 'https://login.example' };
  test.each([
    ['CredentialUnavailableError: endpoints_resolution_error: See https://aka.ms/msal.js.errors', 'AZURE_AUTHORITY_HOST', /not trusted/],
    ['AuthenticationRequiredError: AADSTS7000215: Invalid client secret provided.', 'AZURE_CLIENT_SECRET', /refused the client secret/],
    ['AADSTS700016: Application with identifier x was not found in the directory', 'AZURE_CLIENT_ID', /does not know AZURE_CLIENT_ID/],
    ['AADSTS90002: Tenant not found', 'AZURE_TENANT_ID', /does not know AZURE_TENANT_ID/],
    [
      'AADSTS500011: The resource principal named https://x was not found in the tenant named contoso.',
      'AHDS_AUDIENCE',
      /no resource for the FHIR audience/,
    ],
  ])('%s -> %s', async (text, setting, sentence) => {
    const { describeEntraError } = await import('../../src/config/preflight');
    const d = describeEntraError(new Error(text), auth);
    expect(d.setting).toBe(setting);
    expect(d.message).toMatch(sentence);
  });
});
