import type { AxiosInstance } from 'axios';
import type { Config } from '../config/load';
import type { Observation, Patient } from '../fhir/types';
import { createHttpClient, type TokenSource } from '../http/client';
import { UpstreamError } from '../http/errors';
import { DEPENDENCIES } from '../telemetry/names';
import type { Telemetry } from '../telemetry/telemetry';
import { patientsInWindow } from './patient-pages';
import { searchBundleSchema, singleResourceSchema } from './schemas';

/** A time window on meta.lastUpdated: [since, until). Either end may be open. */
export interface LastUpdatedWindow {
  since?: string;
  until?: string;
}

export interface PatientPageQuery {
  offset: number;
  count: number;
  window?: LastUpdatedWindow;
}

/**
 * Reads from OpenEMR's FHIR API knowing its search semantics: collection bundles with no next
 * link, `total` that counts only this answer, _count/_offset/_sort honoured by Patient only, an
 * unsupported parameter answered by an empty bundle rather than an error.
 */
export class OpenEmrReader {
  readonly http: AxiosInstance;

  constructor(settings: Config['openemr'], httpSettings: Config['http'], auth: TokenSource, telemetry: Telemetry) {
    this.http = createHttpClient({
      side: 'openemr',
      baseURL: settings.fhirBaseUrl,
      timeoutMs: httpSettings.timeoutMs,
      retry: httpSettings.retry,
      telemetry,
      dependencyName: DEPENDENCIES.openemr,
      auth,
      headers: { Accept: 'application/fhir+json, application/json' },
    });
  }

  getPatient(id: string): Promise<Patient> {
    return this.read('Patient', id) as Promise<Patient>;
  }

  getObservation(id: string): Promise<Observation> {
    return this.read('Observation', id) as Promise<Observation>;
  }

  /** Every Observation of one patient (OpenEMR answers them all at once; it cannot page them). */
  observationsOfPatient(patientId: string, window?: LastUpdatedWindow): Promise<Observation[]> {
    return this.search('Observation', { patient: patientId, ...windowParams(window) }) as Promise<Observation[]>;
  }

  /** Observations whose lastUpdated falls in the window, across patients. */
  observationsInWindow(window: LastUpdatedWindow): Promise<Observation[]> {
    return this.search('Observation', windowParams(window)) as Promise<Observation[]>;
  }

  /**
   * One page of Patients in lastUpdated order. OpenEMR has no default order, so _sort is what makes
   * _offset paging stable; a page shorter than `count` is the last.
   */
  patientPage(query: PatientPageQuery): Promise<Patient[]> {
    return this.search('Patient', {
      _sort: '_lastUpdated',
      _count: String(query.count),
      _offset: String(query.offset),
      ...windowParams(query.window),
    }) as Promise<Patient[]>;
  }

  /**
   * Every Patient in the window, page by page, without relying on next links: keyset pages on
   * lastUpdated (see patient-pages.ts), so a Patient changing mid-run cannot push another past a
   * page boundary as plain _offset paging would.
   */
  patients(pageSize: number, window?: LastUpdatedWindow): AsyncGenerator<Patient[]> {
    const ms = (v: string | undefined): number | undefined => (v === undefined ? undefined : Date.parse(v));
    return patientsInWindow(this, pageSize, ms(window?.since), ms(window?.until));
  }

  async search(type: string, params: Record<string, string | string[]>): Promise<Array<{ resourceType: string; id?: string }>> {
    const response = await this.http.get(`/${type}`, { params, paramsSerializer: { indexes: null } });
    const parsed = searchBundleSchema.safeParse(response.data);
    if (!parsed.success) {
      throw new UpstreamError('openemr', 'InvalidResponse', `OpenEMR answered a ${type} search with something that is not a FHIR Bundle.`, response.status);
    }
    const resources = (parsed.data.entry ?? []).flatMap((e) => (e.resource ? [e.resource] : []));
    // OpenEMR's Observation search fans out to sub-services; keep only what was asked for.
    return resources.filter((r) => r.resourceType === type);
  }

  /**
   * OpenEMR answers an unknown id with 404 and body `[]`; any other 404 (a wrong site, an API that
   * is switched off: "Route not found") says nothing about the resource and must not pass for it.
   */
  private async read(type: string, id: string): Promise<unknown> {
    const response = await this.http.get(`/${type}/${encodeURIComponent(id)}`, { validateStatus: (s) => (s >= 200 && s < 300) || s === 404 });
    if (response.status === 404) {
      if (Array.isArray(response.data) && response.data.length === 0) {
        const error = new UpstreamError('openemr', 'NotFound', `OpenEMR has no ${type}/${id}.`, 404);
        error.missing = `${type}/${id}`;
        throw error;
      }
      throw new UpstreamError('openemr', 'InvalidResponse', `OpenEMR answered 404 for its ${type} read route: check OPENEMR_BASE_URL and OPENEMR_SITE, and that the FHIR API is enabled.`, 404);
    }
    const parsed = singleResourceSchema.safeParse(response.data);
    if (!parsed.success || parsed.data.resourceType !== type) {
      throw new UpstreamError('openemr', 'InvalidResponse', `OpenEMR answered a ${type} read with something that is not a ${type}.`, response.status);
    }
    return parsed.data;
  }
}

/** OpenEMR needs seconds in times and compares at one-second precision; gt/lt-style prefixes. */
export function windowParams(window?: LastUpdatedWindow): Record<string, string[]> {
  if (!window) return {};
  const values: string[] = [];
  if (window.since) values.push(`ge${toOpenEmrInstant(window.since)}`);
  if (window.until) values.push(`lt${toOpenEmrInstant(window.until)}`);
  return values.length ? { _lastUpdated: values } : {};
}

/** ISO instant with whole seconds and an explicit offset (OpenEMR rejects times without seconds). */
export function toOpenEmrInstant(iso: string): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw new Error(`not a date-time: ${iso}`);
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}
