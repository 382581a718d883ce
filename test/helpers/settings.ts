import { ConfigError, loadConfig } from '../../src/config/load';

/** The smallest valid connector settings (a Key Vault-free RSA key, identity-based storage), with overrides. */
export function minimalSettings(pem: string, overrides: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  return {
    OPENEMR_BASE_URL: 'https://emr.example.org',
    OPENEMR_CLIENT_ID: 'client-1',
    OPENEMR_PRIVATE_KEY: pem,
    AHDS_FHIR_URL: 'https://ws-fhir.fhir.azurehealthcareapis.com',
    AzureWebJobsStorage__accountName: 'syncstore01',
    ...overrides,
  };
}

/** The ConfigError loadConfig throws for these settings (fails the test when it accepts them). */
export function configError(e: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(e);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('loadConfig accepted the settings');
}
