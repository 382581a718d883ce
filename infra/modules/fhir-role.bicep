// FHIR Data Writer on an existing FHIR service (deployed into that service's resource group).

@description('Resource id of the existing Microsoft.HealthcareApis/workspaces/fhirservices resource.')
param fhirServiceResourceId string

@description('Principal (the managed identity) granted FHIR Data Writer.')
param writerPrincipalId string

// FHIR Data Writer
var fhirDataWriterRoleId = '3f88fce4-5892-4214-ae73-ba5294559913'
var segments = split(fhirServiceResourceId, '/')

resource workspace 'Microsoft.HealthcareApis/workspaces@2024-03-31' existing = {
  name: segments[8]
}

resource fhirService 'Microsoft.HealthcareApis/workspaces/fhirservices@2024-03-31' existing = {
  parent: workspace
  name: segments[10]
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
