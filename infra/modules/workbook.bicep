// The operators' workbook (infra/workbook/operators-workbook.json), bound to Application Insights.

@description('Azure region.')
param location string

@description('Tags applied to the workbook.')
param tags object = {}

@description('Resource id of the Application Insights component the workbook queries.')
param appInsightsId string

@description('Name shown in the portal.')
param displayName string

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, appInsightsId, 'fhirsync-operators-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: appInsightsId
    version: 'Notebook/1.0'
    serializedData: replace(loadTextContent('../workbook/operators-workbook.json'), '__APP_INSIGHTS_RESOURCE_ID__', appInsightsId)
  }
}

output id string = workbook.id
