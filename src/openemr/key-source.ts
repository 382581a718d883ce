import type { TokenCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import type { Config } from '../config/load';
import { ConfigError } from '../config/load';

/**
 * The private key that signs client assertions. App settings normally hold it through a Key Vault
 * reference (resolved by the platform); OPENEMR_PRIVATE_KEY_SECRET_URI reads it from Key Vault at
 * start-up with the app's own identity instead.
 */
export async function resolvePrivateKey(settings: Config['openemr'], credential: () => TokenCredential): Promise<string> {
  if (settings.privateKey) return settings.privateKey;
  const uri = new URL(settings.privateKeySecretUri!);
  const [, kind, name, version] = uri.pathname.split('/');
  if (kind !== 'secrets' || !name) {
    throw new ConfigError(
      'OPENEMR_PRIVATE_KEY_SECRET_URI',
      'Setting OPENEMR_PRIVATE_KEY_SECRET_URI must be a Key Vault secret URI such as https://<vault>.vault.azure.net/secrets/<name>.',
    );
  }
  const client = new SecretClient(uri.origin, credential());
  try {
    const secret = await client.getSecret(name, version ? { version } : {});
    if (!secret.value) throw new Error('empty');
    return secret.value;
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    throw new ConfigError(
      'OPENEMR_PRIVATE_KEY_SECRET_URI',
      `Setting OPENEMR_PRIVATE_KEY_SECRET_URI names a secret that could not be read${status ? ` (Key Vault answered ${status})` : ''}: grant the app's identity Key Vault Secrets User on the vault.`,
    );
  }
}
