// Azure Health Data Services workspace and FHIR R4 service, with FHIR Data Writer for the identity.

@description('Health Data Services workspace name (3-24 lower-case letters and digits).')
param workspaceName string

@description('FHIR service name inside the workspace.')
param fhirServiceName string = 'fhir'

@description('Azure region (one that offers Azure Health Data Services).')
param location string

@description('Tags applied to both resources.')
param tags object = {}

@description('Principal (the managed identity) granted FHIR Data Writer.')
param writerPrincipalId string

// FHIR Data Writer
var fhirDataWriterRoleId = '3f88fce4-5892-4214-ae73-ba5294559913'
var fhirUrl = 'https://${workspaceName}-${fhirServiceName}.fhir.azurehealthcareapis.com'

resource workspace 'Microsoft.HealthcareApis/workspaces@2024-03-31' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    publicNetworkAccess: 'Enabled'
  }
}

resource fhirService 'Microsoft.HealthcareApis/workspaces/fhirservices@2024-03-31' = {
  parent: workspace
  name: fhirServiceName
  location: location
  tags: tags
  kind: 'fhir-R4'
  properties: {
    authenticationConfiguration: {
      authority: '${environment().authentication.loginEndpoint}${subscription().tenantId}'
      audience: fhirUrl
      smartProxyEnabled: false
    }
    publicNetworkAccess: 'Enabled'
  }
}

resource writerRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(fhirService.id, writerPrincipalId, fhirDataWriterRoleId)
  scope: fhirService
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', fhirDataWriterRoleId)
    principalId: writerPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output id string = fhirService.id
output url string = fhirUrl
