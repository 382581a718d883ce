import { ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import type { Config } from '../config/load';
import type { TokenSource } from '../http/client';

/** The Entra credential the settings ask for. Any TokenCredential works with the writer. */
export function createAzureCredential(auth: Config['azureAuth']): TokenCredential {
  const common = {
    ...(auth.authorityHost ? { authorityHost: auth.authorityHost } : {}),
    // No environment variable sets this; the local stack and private authorities need it.
    ...(auth.disableInstanceDiscovery ? { disableInstanceDiscovery: true } : {}),
  };
  switch (auth.mode) {
    case 'client-secret':
      return new ClientSecretCredential(auth.tenantId!, auth.clientId!, auth.clientSecret!, common);
    case 'default':
      return new DefaultAzureCredential({ ...common, ...(auth.clientId ? { managedIdentityClientId: auth.clientId } : {}) });
    case 'managed-identity':
      return auth.clientId ? new ManagedIdentityCredential({ clientId: auth.clientId }) : new ManagedIdentityCredential();
  }
}

/**
 * Bearer tokens for the FHIR service from a TokenCredential. @azure/identity caches and renews
 * tokens itself; this adds only the audience scope and a guard against concurrent first calls.
 */
export class CredentialTokenSource implements TokenSource {
  private cached?: { token: string; expiresAt: number };
  private pending?: Promise<string>;

  constructor(
    private readonly credential: TokenCredential,
    audience: string,
    private readonly now: () => number = Date.now,
  ) {
    this.scope = `${audience.replace(/\/+$/, '')}/.default`;
  }

  private readonly scope: string;

  async getToken(): Promise<string> {
    if (this.cached && this.cached.expiresAt - 120_000 > this.now()) return this.cached.token;
    this.pending ??= this.credential
      .getToken(this.scope)
      .then((t) => {
        if (!t) throw new Error('The Entra credential returned no token for the FHIR service audience.');
        this.cached = { token: t.token, expiresAt: t.expiresOnTimestamp };
        return t.token;
      })
      .finally(() => {
        this.pending = undefined;
      });
    return this.pending;
  }

  invalidate(): void {
    this.cached = undefined;
  }
}
