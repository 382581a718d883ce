// Key Vault (RBAC authorization) holding the OpenEMR client id and private key. The app reads both
// through Key Vault references resolved with the managed identity.

@description('Key Vault name (3-24 characters).')
param name string

@description('Azure region.')
param location string

@description('Tags applied to the vault.')
param tags object = {}

@description('Principal (the managed identity) granted Key Vault Secrets User.')
param readerPrincipalId string

@description('Principal allowed to write secrets (the deployer), granted Key Vault Secrets Officer. Empty: no grant.')
param officerPrincipalId string = ''

@description('Purge protection. Off by default: with it on, a deleted vault keeps its name for the whole retention period and `azd down` then `azd up` with the same environment fails until then (set keyVaultName to a new name if you turn it on and tear down).')
param enablePurgeProtection bool = false

@description('Days a deleted vault stays recoverable (7-90). `azd down --purge` purges it at once when purge protection is off.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 7

@description('Type of officerPrincipalId.')
@allowed(['User', 'ServicePrincipal'])
param officerPrincipalType string = 'User'

@description('OpenEMR client id; empty: the secret is not written (set it after registration).')
param openemrClientId string = ''

@secure()
@description('OpenEMR private key; empty: the secret is not written (set it after deploy with az keyvault secret set).')
param openemrPrivateKey string = ''

// Key Vault Secrets User, Key Vault Secrets Officer
var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'
var keyVaultSecretsOfficerRoleId = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
var clientIdSecretName = 'openemr-client-id'
var privateKeySecretName = 'openemr-private-key'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    // null, not false: Azure refuses to turn purge protection off once on, and false is "off".
    enablePurgeProtection: enablePurgeProtection ? true : null
    publicNetworkAccess: 'Enabled'
  }
}

resource clientIdSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(openemrClientId)) {
  parent: vault
  name: clientIdSecretName
  properties: {
    value: openemrClientId
    contentType: 'text/plain'
  }
}

resource privateKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(openemrPrivateKey)) {
  parent: vault
  name: privateKeySecretName
  properties: {
    value: openemrPrivateKey
    contentType: 'application/x-pem-file'
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, readerPrincipalId, keyVaultSecretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: readerPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource secretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(officerPrincipalId)) {
  name: guid(vault.id, officerPrincipalId, keyVaultSecretsOfficerRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficerRoleId)
    principalId: officerPrincipalId
    principalType: officerPrincipalType
  }
}

output name string = vault.name
output id string = vault.id
// Version-less URIs: the app picks up a rotated secret without a redeploy.
output clientIdSecretUri string = '${vault.properties.vaultUri}secrets/${clientIdSecretName}'
output privateKeySecretUri string = '${vault.properties.vaultUri}secrets/${privateKeySecretName}'
