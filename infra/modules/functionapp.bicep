// The Function App on Flex Consumption (FC1, Linux, Node 22), running as the user-assigned identity.
// Storage is identity-based, secrets are Key Vault references resolved with the same identity.

@description('Function App name.')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Azure region (one that offers Flex Consumption).')
param location string

@description('Tags; must include azd-service-name for azd deploy.')
param tags object = {}

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity.')
param identityClientId string

@description('Storage account for AzureWebJobsStorage (identity-based), tables and queues.')
param storageAccountName string

@description('URL of the blob container Flex Consumption deploys the package from.')
param deploymentContainerUrl string

@description('Application Insights connection string.')
param appInsightsConnectionString string

@description('Upper limit of instances.')
param maximumInstanceCount int = 40

@description('Memory per instance in MB.')
param instanceMemoryMB int = 2048

// Without a shared budget, bundles toward AHDS could reach maximumInstanceCount x (timer + HTTP runs +
// host.json queues.batchSize workers) x AHDS_MAX_CONCURRENCY (40 x 6 x 32): thousands, where Microsoft
// warns that past about 100 concurrent bundles AHDS may get slower. Every process takes a slot of this
// one budget (Table storage) per bundle.
@description('Bundles in flight toward AHDS for the whole app, all instances together (AHDS_APP_MAX_BUNDLES).')
@minValue(1)
@maxValue(100)
param ahdsAppMaxBundles int = 64

@description('OpenEMR server root (OPENEMR_BASE_URL).')
param openemrBaseUrl string

@description('OpenEMR site name (OPENEMR_SITE).')
param openemrSite string = 'default'

@description('Scopes requested from OpenEMR (OPENEMR_SCOPES; empty: derived from the carried resource types).')
param openemrScopes string

@description('Key Vault secret URI of the OpenEMR client id.')
param openemrClientIdSecretUri string

@description('Key Vault secret URI of the OpenEMR private key.')
param openemrPrivateKeySecretUri string

@description('AHDS FHIR service URL (AHDS_FHIR_URL); also the token audience.')
param ahdsFhirUrl string

@description('NCRONTAB schedule of the incremental sync (SYNC_SCHEDULE).')
param syncSchedule string

@description('NCRONTAB schedule of reconciliation (RECONCILE_SCHEDULE).')
param reconcileSchedule string

@description('report-only or delete (RECONCILE_DELETE_MODE).')
param reconcileDeleteMode string = 'report-only'

@description('Work queue name (SYNC_QUEUE_NAME).')
param workQueueName string

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'node'
        version: '22'
      }
    }
  }
}

// Flex Consumption takes the runtime from functionAppConfig: no FUNCTIONS_WORKER_RUNTIME here.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: {
    AzureWebJobsStorage__accountName: storageAccountName
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    OPENEMR_BASE_URL: openemrBaseUrl
    OPENEMR_SITE: openemrSite
    OPENEMR_SCOPES: openemrScopes
    OPENEMR_CLIENT_ID: '@Microsoft.KeyVault(SecretUri=${openemrClientIdSecretUri})'
    OPENEMR_PRIVATE_KEY: '@Microsoft.KeyVault(SecretUri=${openemrPrivateKeySecretUri})'
    AHDS_FHIR_URL: ahdsFhirUrl
    AHDS_AUDIENCE: ahdsFhirUrl
    AZURE_AUTH_MODE: 'managed-identity'
    AZURE_CLIENT_ID: identityClientId
    SYNC_SCHEDULE: syncSchedule
    RECONCILE_SCHEDULE: reconcileSchedule
    RECONCILE_DELETE_MODE: reconcileDeleteMode
    SYNC_QUEUE_NAME: workQueueName
    AHDS_APP_MAX_BUNDLES: string(ahdsAppMaxBundles)
  }
}

output name string = site.name
output id string = site.id
output url string = 'https://${site.properties.defaultHostName}'
