/**
 * Every event and metric name the connector emits. The workbook and alert queries in infra/ are
 * checked against these by a test, so rename here and there together.
 */
export const EVENTS = {
  /** One per sync run (HTTP, timer, queue, CLI). */
  syncRun: 'FhirSync.Run',
  /** A resource was dead-lettered. Carries type, id, status, reason; never content. */
  deadLetter: 'FhirSync.DeadLetter',
  /** A reconciliation finished. */
  reconcile: 'FhirSync.Reconcile',
  /** Authentication against one side failed. */
  authFailure: 'FhirSync.AuthFailure',
} as const;

export const METRICS = {
  /** Resources written per run and type: created + updated + unchanged. */
  resourcesSynced: 'FhirSync.ResourcesSynced',
  /** Resources that failed (dead-lettered) per run and type. */
  resourcesFailed: 'FhirSync.ResourcesFailed',
  /** Share of resources that made it, 0..1, per run. */
  successRate: 'FhirSync.SuccessRate',
  /** Milliseconds per resource written, per run. */
  latencyPerResourceMs: 'FhirSync.LatencyPerResourceMs',
  /** Seconds between now and the upper bound of the last closed window. */
  lagSeconds: 'FhirSync.LagSeconds',
  /** One per retried request: dimensions side and status. */
  retries: 'FhirSync.Retries',
  /** One per failed authentication: dimension side. */
  authFailures: 'FhirSync.AuthFailures',
  /** Codings no map covered, per run. */
  unmappedCodes: 'FhirSync.UnmappedCodes',
  /** Dead letters waiting for replay (gauge). */
  deadLettersPending: 'FhirSync.DeadLettersPending',
  /** Seconds between now and a resource type's watermark (gauge per resourceType, every timer run, failed ones too). */
  freshnessSeconds: 'FhirSync.FreshnessSeconds',
} as const;

/** Dependency target names, as they appear in Application Insights' dependency table. */
export const DEPENDENCIES = { openemr: 'OpenEMR FHIR', openemrAuth: 'OpenEMR OAuth2', ahds: 'AHDS FHIR' } as const;

export type Side = 'openemr' | 'ahds';
