// Log alert rules over the Application Insights tables, plus an optional e-mail action group.
// Each rule's meaning and response is in docs/operations.md (Runbook).

@description('Azure region of the alert rules.')
param location string

@description('Tags applied to the rules and the action group.')
param tags object = {}

@description('Prefix of the rule names.')
param namePrefix string

@description('Resource id of the Application Insights component the rules query.')
param appInsightsId string

@description('E-mail address notified when a rule fires. Empty: no action group.')
param alertEmail string = ''

@description('Lag alert threshold in seconds (FhirSync.LagSeconds).')
param lagThresholdSeconds int = 1800

@description('Failure rate alert threshold in percent of resources processed.')
param failureRatePercentThreshold int = 5

@description('Dead letter alert fires when more than this many are created within one hour.')
param deadLetterThreshold int = 0

var actionGroups = empty(alertEmail) ? [] : [actionGroup.id]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-${namePrefix}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'fhirsync'
    enabled: true
    emailReceivers: [
      {
        name: 'operators'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var rules = [
  {
    key: 'failure-rate'
    displayName: 'FHIR sync: failure rate above ${failureRatePercentThreshold}%'
    description: 'Share of resources that failed (FhirSync.ResourcesFailed) among all processed exceeds the threshold over 30 minutes.'
    severity: 2
    evaluationFrequency: 'PT5M'
    windowSize: 'PT30M'
    query: '''
customMetrics
| where name in ('FhirSync.ResourcesSynced', 'FhirSync.ResourcesFailed')
| summarize synced = sumif(valueSum, name == 'FhirSync.ResourcesSynced'), failed = sumif(valueSum, name == 'FhirSync.ResourcesFailed')
| where synced + failed > 0
| extend FailurePercent = 100.0 * failed / (synced + failed)
'''
    metricMeasureColumn: 'FailurePercent'
    timeAggregation: 'Maximum'
    operator: 'GreaterThan'
    threshold: failureRatePercentThreshold
    dimensions: []
  }
  {
    key: 'lag'
    displayName: 'FHIR sync: lag above ${lagThresholdSeconds} s'
    description: 'The newest closed sync window is further behind now than the threshold (FhirSync.LagSeconds; failed and skipped runs measure it from the stored watermarks, so it fires in an outage).'
    severity: 2
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    query: '''
customMetrics
| where name == 'FhirSync.LagSeconds'
| summarize LagSeconds = max(valueMax)
'''
    metricMeasureColumn: 'LagSeconds'
    timeAggregation: 'Maximum'
    operator: 'GreaterThan'
    threshold: lagThresholdSeconds
    dimensions: []
  }
  {
    key: 'no-runs'
    displayName: 'FHIR sync: no timer runs in 30 minutes'
    description: 'No FhirSync.Run event from the incremental timer (failed and skipped runs send one too): the app is stopped, failing at start-up or the timer is disabled.'
    severity: 1
    evaluationFrequency: 'PT10M'
    windowSize: 'PT30M'
    query: '''
customEvents
| where name == 'FhirSync.Run'
| where tostring(customDimensions.trigger) == 'timer'
'''
    metricMeasureColumn: ''
    timeAggregation: 'Count'
    operator: 'LessThan'
    threshold: 1
    dimensions: []
  }
  {
    key: 'runs-failing'
    displayName: 'FHIR sync: timer runs failing'
    description: 'Three or more incremental timer runs in 30 minutes ended failed (FhirSync.Run status failed): a side or storage is down or refusing; failureClass says which.'
    severity: 1
    evaluationFrequency: 'PT10M'
    windowSize: 'PT30M'
    query: '''
customEvents
| where name == 'FhirSync.Run'
| where tostring(customDimensions.trigger) == 'timer'
| where tostring(customDimensions.status) == 'failed'
'''
    metricMeasureColumn: ''
    timeAggregation: 'Count'
    operator: 'GreaterThanOrEqual'
    threshold: 3
    dimensions: []
  }
  {
    key: 'auth-failures'
    displayName: 'FHIR sync: authentication failures'
    description: 'The connector could not authenticate against OpenEMR or AHDS (FhirSync.AuthFailures, by side).'
    severity: 1
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    query: '''
customMetrics
| where name == 'FhirSync.AuthFailures'
| summarize AuthFailures = sum(valueSum) by Side = tostring(customDimensions.side)
'''
    metricMeasureColumn: 'AuthFailures'
    timeAggregation: 'Total'
    operator: 'GreaterThan'
    threshold: 0
    dimensions: [
      {
        name: 'Side'
        operator: 'Include'
        values: ['*']
      }
    ]
  }
  {
    key: 'dead-letters'
    displayName: 'FHIR sync: dead letters growing'
    description: 'More than ${deadLetterThreshold} resources were dead-lettered within one hour (FhirSync.DeadLetter).'
    severity: 3
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    query: '''
customEvents
| where name == 'FhirSync.DeadLetter'
| summarize DeadLetters = count()
'''
    metricMeasureColumn: 'DeadLetters'
    timeAggregation: 'Total'
    operator: 'GreaterThan'
    threshold: deadLetterThreshold
    dimensions: []
  }
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for rule in rules: {
    name: '${namePrefix}-${rule.key}'
    location: location
    tags: tags
    kind: 'LogAlert'
    properties: {
      displayName: rule.displayName
      description: rule.description
      severity: rule.severity
      enabled: true
      scopes: [appInsightsId]
      evaluationFrequency: rule.evaluationFrequency
      windowSize: rule.windowSize
      autoMitigate: true
      criteria: {
        allOf: [
          {
            query: rule.query
            timeAggregation: rule.timeAggregation
            metricMeasureColumn: empty(rule.metricMeasureColumn) ? null : rule.metricMeasureColumn
            operator: rule.operator
            threshold: rule.threshold
            dimensions: rule.dimensions
            failingPeriods: {
              numberOfEvaluationPeriods: 1
              minFailingPeriodsToAlert: 1
            }
          }
        ]
      }
      actions: {
        actionGroups: actionGroups
      }
    }
  }
]

output ruleIds array = [for (rule, i) in rules: alertRules[i].id]
