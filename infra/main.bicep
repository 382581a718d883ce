// Everything the OpenEMR -> AHDS FHIR connector needs in Azure. Deploy with `azd up` (azure.yaml at
// the repository root) or `az deployment sub create` (see docs/operations.md).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; used to name the resource group and to derive unique resource names.')
param environmentName string

@minLength(1)
@description('Azure region for every resource. It must offer Flex Consumption and Azure Health Data Services.')
param location string

@description('Object id of the person or pipeline deploying (azd sets AZURE_PRINCIPAL_ID); granted Key Vault Secrets Officer so it can store the OpenEMR private key. Empty: no grant.')
param principalId string = ''

@description('Type of principalId: User for a person, ServicePrincipal for a pipeline (azd env set AZURE_PRINCIPAL_TYPE ServicePrincipal, or the pipeline variable of the same name).')
@allowed(['User', 'ServicePrincipal'])
param principalType string = 'User'

@description('Key Vault name; empty: kv-<token of subscription, environment and region>. Set a new one to redeploy while an old vault of the same environment is still soft-deleted.')
@maxLength(24)
param keyVaultName string = ''

@description('Key Vault purge protection (see infra/modules/keyvault.bicep): off so that azd down --purge then azd up works; turn on for production and keep the vault.')
param keyVaultPurgeProtection bool = false

@description('OpenEMR server root, e.g. https://emr.example.org (https required).')
param openemrBaseUrl string

@description('OpenEMR site name used in the API and OAuth2 paths.')
param openemrSite string = 'default'

@description('Client id that OpenEMR issued at registration (npm run openemr:register). Stored as a Key Vault secret. May be empty on the first deploy and set afterwards.')
param openemrClientId string = ''

@secure()
@description('Private key (PEM, PKCS#8, or JWK JSON) that signs the client assertion. Leave empty to store it in Key Vault after deploy (recommended: it then never passes through deployment history).')
param openemrPrivateKey string = ''

@description('Scopes requested from OpenEMR. Empty: a read scope for each carried resource type (SYNC_RESOURCE_TYPES) plus the bulk export scopes.')
param openemrScopes string = ''

@description('URL of an existing AHDS FHIR service to write to instead of creating one, e.g. https://ws-fhir.fhir.azurehealthcareapis.com. Empty: a workspace and FHIR service are created.')
param existingFhirServiceUrl string = ''

@description('Resource id of that existing FHIR service (Microsoft.HealthcareApis/workspaces/fhirservices); the identity gets FHIR Data Writer on it. Required when existingFhirServiceUrl is set.')
param existingFhirServiceResourceId string = ''

@description('NCRONTAB schedule of the incremental sync timer.')
param syncSchedule string = '0 */5 * * * *'

@description('NCRONTAB schedule of the nightly reconciliation timer.')
param reconcileSchedule string = '0 30 2 * * *'

@description('What reconciliation does with resources deleted in OpenEMR: report-only or delete.')
@allowed(['report-only', 'delete'])
param reconcileDeleteMode string = 'report-only'

@description('Upper limit of Flex Consumption instances (the adaptive limiter protects AHDS; OpenEMR reads are capped per instance).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per Flex Consumption instance in MB.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('E-mail address that receives alert notifications. Empty: alerts fire without notifications.')
param alertEmail string = ''

@description('Alert when the sync lag (FhirSync.LagSeconds) exceeds this many seconds.')
@minValue(60)
param lagThresholdSeconds int = 1800

@description('Alert when the share of failed resources over the evaluation window exceeds this percentage.')
@minValue(1)
@maxValue(100)
param failureRatePercentThreshold int = 5

@description('Alert when more than this many dead letters are created within one hour.')
@minValue(0)
param deadLetterThreshold int = 0

@description('Days Log Analytics keeps telemetry.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var useExistingFhir = !empty(existingFhirServiceUrl)
// Placeholder keeps the scope expression valid when no existing service is used (the module is skipped then).
var existingFhirSegments = split(empty(existingFhirServiceResourceId) ? '/subscriptions/${subscription().subscriptionId}/resourceGroups/unused' : existingFhirServiceResourceId, '/')

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-fhirsync-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    appInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionDays
    publisherPrincipalId: identity.outputs.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: 'app-package-${resourceToken}'
    workQueueName: 'fhirsync-work'
    principalId: identity.outputs.principalId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: empty(keyVaultName) ? 'kv-${resourceToken}' : keyVaultName
    location: location
    tags: tags
    enablePurgeProtection: keyVaultPurgeProtection
    readerPrincipalId: identity.outputs.principalId
    officerPrincipalId: principalId
    officerPrincipalType: principalType
    openemrClientId: openemrClientId
    openemrPrivateKey: openemrPrivateKey
  }
}

module fhir 'modules/fhir.bicep' = if (!useExistingFhir) {
  name: 'fhir'
  scope: rg
  params: {
    workspaceName: 'ahds${resourceToken}'
    fhirServiceName: 'fhir'
    location: location
    tags: tags
    writerPrincipalId: identity.outputs.principalId
  }
}

// The existing FHIR service may live in another resource group (or subscription): grant there.
module existingFhirAccess 'modules/fhir-role.bicep' = if (useExistingFhir) {
  name: 'existing-fhir-access'
  scope: resourceGroup(existingFhirSegments[2], existingFhirSegments[4])
  params: {
    fhirServiceResourceId: existingFhirServiceResourceId
    writerPrincipalId: identity.outputs.principalId
  }
}

var fhirUrl = useExistingFhir ? existingFhirServiceUrl : fhir.outputs.url

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    name: 'func-fhirsync-${resourceToken}'
    planName: 'plan-${resourceToken}'
    location: location
    tags: union(tags, { 'azd-service-name': 'api' })
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    openemrBaseUrl: openemrBaseUrl
    openemrSite: openemrSite
    openemrScopes: openemrScopes
    openemrClientIdSecretUri: keyVault.outputs.clientIdSecretUri
    openemrPrivateKeySecretUri: keyVault.outputs.privateKeySecretUri
    ahdsFhirUrl: fhirUrl
    syncSchedule: syncSchedule
    reconcileSchedule: reconcileSchedule
    reconcileDeleteMode: reconcileDeleteMode
    workQueueName: storage.outputs.workQueueName
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
    displayName: 'FHIR sync operations (${environmentName})'
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    namePrefix: 'fhirsync-${environmentName}'
    appInsightsId: monitoring.outputs.appInsightsId
    alertEmail: alertEmail
    lagThresholdSeconds: lagThresholdSeconds
    failureRatePercentThreshold: failureRatePercentThreshold
    deadLetterThreshold: deadLetterThreshold
  }
}

output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_URL string = functionApp.outputs.url
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AHDS_FHIR_URL string = fhirUrl
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output OPERATORS_WORKBOOK_ID string = workbook.outputs.id
