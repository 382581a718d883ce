/**
 * The OpenEMR releases the stand-in can be, and what differs between them. Facts from OpenEMR's PHP
 * code at each release point (see the fidelity audit; summarised in the README's compatibility matrix).
 * Every behaviour that depends on the release reads it from here, so a release is one row.
 *
 * '7.0.2' is modelled as 7.0.2 and 7.0.2.1, the worst of the 7.0.2.x line: Observation `_lastUpdated`
 * and `$export?_since` arrived in 7.0.2.2 (openemr#7754, #7746), the paging fix only in 7.0.3
 * (#8129). A client cannot tell the patches apart: /metadata's software.version comes from
 * composer.json's "version", which is "7.0.2" on every 7.0.2.x (FhirMetaDataRestController.php:85).
 */
export const OPENEMR_VERSIONS = ['7.0.2', '7.0.3', '7.0.4', 'master'] as const;
export type OpenEmrVersion = (typeof OPENEMR_VERSIONS)[number];
/** The newest release the stand-in models: its default. */
export const DEFAULT_OPENEMR_VERSION: OpenEmrVersion = 'master';

export interface OpenEmrVersionTraits {
  /** What `/metadata` reports as `software.version`. */
  softwareVersion: string;
  /**
   * `_count`/`_offset`/`_sort` empty every search with a 200 bundle (7.0.2.x: a missing `continue`
   * in ResourceServiceSearchTrait; fixed in 7.0.3, openemr#8129).
   */
  pagingEmptiesSearch: boolean;
  /** Observation honours `_lastUpdated` (absent before 7.0.2.2: an empty 200 bundle). */
  observationLastUpdated: boolean;
  /**
   * Every Observation is served with meta.lastUpdated = now (7.0.2 before .2:
   * FhirObservationVitalsService.php:424 `setLastUpdated(UtilsService::getDateFormattedAsUTC())`).
   */
  observationMetaNow: boolean;
  /** `$export?_since` works (7.0.2 before .2: a 500 TypeError). */
  exportSince: boolean;
  /** Registration accepts `token_endpoint_auth_method: private_key_jwt` (7.0.4+). */
  registrationPrivateKeyJwt: boolean;
  /** SMART v2 scopes (`system/X.rs`) are known (7.0.4+); before, they are 400 invalid_scope. */
  smartV2Scopes: boolean;
  /** Patient `meta.lastUpdated` column: `patient_data.date` (7.0.2) or `patient_data.last_updated`. */
  patientLastUpdatedColumn: 'date' | 'last_updated';
}

export const OPENEMR_VERSION_TRAITS: Record<OpenEmrVersion, OpenEmrVersionTraits> = {
  '7.0.2': {
    softwareVersion: '7.0.2',
    pagingEmptiesSearch: true,
    observationLastUpdated: false,
    observationMetaNow: true,
    exportSince: false,
    registrationPrivateKeyJwt: false,
    smartV2Scopes: false,
    patientLastUpdatedColumn: 'date',
  },
  '7.0.3': {
    softwareVersion: '7.0.3',
    pagingEmptiesSearch: false,
    observationLastUpdated: true,
    observationMetaNow: false,
    exportSince: true,
    registrationPrivateKeyJwt: false,
    smartV2Scopes: false,
    patientLastUpdatedColumn: 'last_updated',
  },
  '7.0.4': {
    softwareVersion: '7.0.4',
    pagingEmptiesSearch: false,
    observationLastUpdated: true,
    observationMetaNow: false,
    exportSince: true,
    registrationPrivateKeyJwt: true,
    smartV2Scopes: true,
    patientLastUpdatedColumn: 'last_updated',
  },
  master: {
    softwareVersion: '8.2.0-dev',
    pagingEmptiesSearch: false,
    observationLastUpdated: true,
    observationMetaNow: false,
    exportSince: true,
    registrationPrivateKeyJwt: true,
    smartV2Scopes: true,
    patientLastUpdatedColumn: 'last_updated',
  },
};

export function isOpenEmrVersion(value: string): value is OpenEmrVersion {
  return (OPENEMR_VERSIONS as readonly string[]).includes(value);
}
