/** Discovery documents and the CapabilityStatement, trimmed to what the stand-in really serves. */
import { isDirectoryType, SEARCH_PARAMS, SUPPORTED_TYPES, TYPE_SCOPES } from './standin-types';

/** Scopes of the export and its files (FhirOperationExportRestController.php, FhirDocumentRestController.php). */
export const EXPORT_SCOPES = [
  'system/*.$export',
  'system/Patient.$export',
  'system/Group.$export',
  'system/*.$bulkdata-status',
  'system/Binary.read',
];

export const SUPPORTED_SCOPES = ['openid', ...TYPE_SCOPES, ...EXPORT_SCOPES];

/** The scopes a release knows: SMART v2 `.rs` only from 7.0.4 (ServerScopeListEntity.php:171). */
export function knownScopes(smartV2Scopes: boolean): string[] {
  return SUPPORTED_SCOPES.filter((s) => smartV2Scopes || !s.endsWith('.rs'));
}

export interface Endpoints {
  baseUrl: string;
  site: string;
  tokenUrl: string;
  fhirBaseUrl: string;
  /** scopes_supported of this release. */
  scopes: string[];
}

export function openIdConfiguration(e: Endpoints): Record<string, unknown> {
  const issuer = `${e.baseUrl}/oauth2/${e.site}`;
  return {
    issuer,
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: e.tokenUrl,
    jwks_uri: `${issuer}/jwk`,
    registration_endpoint: `${issuer}/registration`,
    scopes_supported: e.scopes,
    response_types_supported: ['code'],
    grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: ['RS384'],
  };
}

export function smartConfiguration(e: Endpoints): Record<string, unknown> {
  const issuer = `${e.baseUrl}/oauth2/${e.site}`;
  return {
    issuer,
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: e.tokenUrl,
    registration_endpoint: `${issuer}/registration`,
    scopes_supported: e.scopes,
    grant_types_supported: ['authorization_code', 'client_credentials'],
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: ['RS384'],
    capabilities: [
      'client-confidential-asymmetric',
      'permission-v1',
      ...(e.scopes.some((s) => s.endsWith('.rs')) ? ['permission-v2'] : []),
    ],
  };
}

export function capabilityStatement(e: Endpoints, date: string, softwareVersion: string): Record<string, unknown> {
  const param = (name: string) => ({
    name,
    type: ['_lastUpdated', 'birthdate', 'date'].includes(name)
      ? 'date'
      : ['patient', 'generalPractitioner'].includes(name)
        ? 'reference'
        : ['name', 'family', 'given', 'address', 'address-city', 'address-postalcode', 'address-state'].includes(name)
          ? 'string'
          : 'token',
  });
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date,
    kind: 'instance',
    software: { name: 'OpenEMR (stand-in)', version: softwareVersion },
    implementation: { description: 'OpenEMR FHIR API stand-in', url: e.fhirBaseUrl },
    fhirVersion: '4.0.1',
    format: ['application/json'],
    rest: [
      {
        mode: 'server',
        security: {
          extension: [
            {
              url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
              extension: [
                { url: 'token', valueUri: e.tokenUrl },
                { url: 'register', valueUri: `${e.baseUrl}/oauth2/${e.site}/registration` },
              ],
            },
          ],
          service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
        },
        resource: SUPPORTED_TYPES.map((type) => ({
          type,
          ...(type === 'Patient' || isDirectoryType(type)
            ? { profile: `http://hl7.org/fhir/us/core/StructureDefinition/us-core-${type.toLowerCase()}` }
            : {}),
          interaction: [{ code: 'read' }, { code: 'search-type' }],
          searchParam: SEARCH_PARAMS[type].map(param),
          ...(type === 'Patient'
            ? { operation: [{ name: 'export', definition: 'http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export' }] }
            : {}),
        })),
        operation: [{ name: 'export', definition: 'http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export' }],
      },
    ],
  };
}
