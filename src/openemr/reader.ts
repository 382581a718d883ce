import type { AxiosInstance } from 'axios';
import type { Config } from '../config/load';
import type { Observation, Patient, SyncedResource } from '../fhir/types';
import { createHttpClient, type TokenSource } from '../http/client';
import { UpstreamError } from '../http/errors';
import { DEPENDENCIES } from '../telemetry/names';
import type { Telemetry } from '../telemetry/telemetry';
import { patientsInWindow } from './patient-pages';
import { releaseOf, type OpenEmrRelease } from './releases';
import { capabilityStatementSchema, searchBundleSchema, singleResourceSchema } from './schemas';

/** A time window on meta.lastUpdated: [since, until). Either end may be open. */
export interface LastUpdatedWindow {
  since?: string;
  until?: string;
}

/** One search parameter, one value: PHP keeps only the last value of a repeated key (see OPENEMR-API). */
export type SearchParams = Record<string, string>;

/** How the connector reads OpenEMR (settings beside the connection ones). */
export interface ReadSettings {
  /** false: never use $export; every read is a search. */
  exportEnabled: boolean;
  /** Timeout of the $export kick-off, which OpenEMR answers only once the whole export is written. */
  exportKickoffTimeoutMs: number;
  /** Longest time one export file may take to download (total, not idle). */
  exportDownloadTimeoutMs: number;
  /** Windows longer than this (or with no lower bound) are read by $export when it is offered. */
  exportGapSeconds: number;
  /** Observation windows up to this long are one `_lastUpdated=ge` read; longer ones are read per Patient. */
  observationSpanSeconds: number;
}

export const DEFAULT_READ_SETTINGS: ReadSettings = {
  exportEnabled: true,
  exportKickoffTimeoutMs: 180_000,
  exportDownloadTimeoutMs: 1_800_000,
  exportGapSeconds: 86_400,
  observationSpanSeconds: 86_400,
};

/** What `/metadata` said: the release and OpenEMR's clock. */
export interface ServerInfo {
  release: OpenEmrRelease;
  /** OpenEMR's now (epoch ms): the HTTP Date header (its CapabilityStatement date is date-only). */
  now: number;
}

/** OpenEMR runs a release the connector will not sync from (one sentence naming it and why). */
export class UnsupportedReleaseError extends UpstreamError {
  constructor(readonly release: OpenEmrRelease) {
    super('openemr', 'BadRequest', release.refusal ?? `OpenEMR ${release.version} is not supported.`);
    this.name = 'UnsupportedReleaseError';
  }
}

/** Patient ids per `_id` search (commas are OR on OpenEMR): 100 UUIDs keep the URL under 4 KB, well below Apache's 8 KB request line. */
const IDS_PER_LOOKUP = 100;

/**
 * The one way into OpenEMR's FHIR API. It knows its search semantics: PHP keeps the last value of
 * a repeated key (so every parameter is sent once and the other bound is applied here), collection
 * bundles with no next link and `total` counting only this answer, `_count`/`_sort` honoured by
 * Patient only, an unsupported parameter answered by an empty bundle. Every answer is parsed (zod)
 * before anything else sees it. Export-or-search is decided in source.ts on top of it.
 */
export class OpenEmrReader {
  readonly http: AxiosInstance;
  /** For /metadata, which needs no token: the release is known (and refused) before any token is asked. */
  private readonly publicHttp: AxiosInstance;
  /** Requests to OpenEMR made through this reader (for the load figures: bench and tests). */
  requests = 0;
  readonly fhirBaseUrl: string;
  readonly settings: ReadSettings;
  private info?: Promise<ServerInfo>;

  constructor(
    readonly connection: Config['openemr'],
    readonly httpSettings: Config['http'],
    readonly auth: TokenSource,
    readonly telemetry: Telemetry,
    settings: Partial<ReadSettings> = {},
  ) {
    this.fhirBaseUrl = connection.fhirBaseUrl.replace(/\/+$/, '');
    this.settings = { ...DEFAULT_READ_SETTINGS, ...settings };
    this.http = this.client({});
    this.publicHttp = this.client({ noAuth: true });
  }

  /** An HTTP client on the FHIR base (own timeout/retry/auth when given); every request is counted. */
  client(options: { timeoutMs?: number; noRetry?: boolean; noAuth?: boolean }): AxiosInstance {
    const http = createHttpClient({
      side: 'openemr',
      baseURL: this.fhirBaseUrl,
      timeoutMs: options.timeoutMs ?? this.httpSettings.timeoutMs,
      retry: options.noRetry ? { ...this.httpSettings.retry, maxAttempts: 1 } : this.httpSettings.retry,
      telemetry: this.telemetry,
      dependencyName: DEPENDENCIES.openemr,
      ...(options.noAuth ? {} : { auth: this.auth }),
      headers: { Accept: 'application/fhir+json, application/json' },
    });
    http.interceptors.request.use((config) => {
      this.requests++;
      return config;
    });
    return http;
  }

  /**
   * The release and clock, from one GET /metadata (no token needed). Asked once per reader run:
   * `refresh` asks again (each incremental run does, so an upgrade is seen on the next run).
   */
  serverInfo(refresh = false): Promise<ServerInfo> {
    if (refresh || !this.info) {
      this.info = this.fetchServerInfo();
      this.info.catch(() => (this.info = undefined));
    }
    return this.info;
  }

  /** The release, refused with its sentence when the connector cannot sync from it. */
  async supportedRelease(refresh = false): Promise<ServerInfo> {
    const info = await this.serverInfo(refresh);
    if (info.release.refusal) throw new UnsupportedReleaseError(info.release);
    return info;
  }

  private async fetchServerInfo(): Promise<ServerInfo> {
    const answer = await this.publicHttp.get('/metadata');
    const parsed = capabilityStatementSchema.safeParse(answer.data);
    if (!parsed.success)
      throw new UpstreamError(
        'openemr',
        'InvalidResponse',
        'OpenEMR answered /metadata with something that is not a CapabilityStatement: check OPENEMR_BASE_URL and OPENEMR_SITE.',
        answer.status,
      );
    const headerDate = Date.parse(String((answer.headers as Record<string, unknown>)?.date ?? ''));
    const reference = Number.isNaN(headerDate) ? Date.now() : headerDate;
    // A full instant with an offset (other servers) is preferred when it agrees with the header.
    const date = parsed.data.date;
    let now = reference;
    if (date && /T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(date)) {
      const ms = Date.parse(date);
      if (!Number.isNaN(ms) && Math.abs(ms - reference) < 86_400_000) now = ms;
    }
    return { release: releaseOf(parsed.data.software?.version), now };
  }

  getPatient(id: string): Promise<Patient> {
    return this.read('Patient', id) as Promise<Patient>;
  }

  getObservation(id: string): Promise<Observation> {
    return this.read('Observation', id) as Promise<Observation>;
  }

  /**
   * Every Observation of one patient, optionally only those with lastUpdated >= since (OpenEMR
   * answers them all at once; it cannot page them, and `_count` would cut each sub-service).
   */
  observationsOfPatient(patientId: string, since?: string): Promise<Observation[]> {
    return this.ofPatient('Observation', patientId, since) as Promise<Observation[]>;
  }

  /**
   * Observations with lastUpdated >= since, in one answer: the only window OpenEMR can express
   * (`_lastUpdated=ge`; no `_count`, which it would apply per sub-service and which cannot page).
   */
  observationsSince(since: string): Promise<Observation[]> {
    return this.updatedSince('Observation', since) as Promise<Observation[]>;
  }

  /** Every resource of a patient-scoped type (Observation, Encounter, Condition) of one patient, `ge` since when given, in one answer. */
  ofPatient(type: string, patientId: string, since?: string): Promise<SyncedResource[]> {
    return this.search(type, { patient: patientId, ...(since ? { _lastUpdated: `ge${toOpenEmrInstant(since)}` } : {}) }) as Promise<
      SyncedResource[]
    >;
  }

  /** Every resource of a type with lastUpdated >= since, in one answer (`_lastUpdated=ge`, no paging). */
  updatedSince(type: string, since: string): Promise<SyncedResource[]> {
    return this.search(type, { _lastUpdated: `ge${toOpenEmrInstant(since)}` }) as Promise<SyncedResource[]>;
  }

  /**
   * Every resource of a type that is not patient-scoped (Practitioner, Organization, Location), `ge`
   * since when given, in one answer: OpenEMR pages none of them (`_count` is Patient's only), and
   * the sets are a practice's staff and facilities (plus one home-address Location per Patient).
   */
  whole(type: string, since?: string): Promise<SyncedResource[]> {
    return this.search(type, since ? { _lastUpdated: `ge${toOpenEmrInstant(since)}` } : {}) as Promise<SyncedResource[]>;
  }

  /** The resources of a type with these ids (`_id=a,b,c`, OR-ed): one request per 100 ids; absent ids are left out. */
  async byIds(type: string, ids: readonly string[]): Promise<SyncedResource[]> {
    const out: SyncedResource[] = [];
    const unique = [...new Set(ids)].filter((id) => !id.includes(','));
    for (let i = 0; i < unique.length; i += IDS_PER_LOOKUP)
      out.push(...((await this.search(type, { _id: unique.slice(i, i + IDS_PER_LOOKUP).join(',') })) as SyncedResource[]));
    return out;
  }

  /** One resource by type and id (404 `[]` throws an UpstreamError with `missing` set). */
  getResource(type: string, id: string): Promise<SyncedResource> {
    return this.read(type, id) as Promise<SyncedResource>;
  }

  /** One sorted page of Patients from `since` (ge) on; the caller applies the upper bound. */
  patientPage(query: { since?: string; count: number }): Promise<Patient[]> {
    return this.search('Patient', {
      ...(query.since ? { _lastUpdated: `ge${toOpenEmrInstant(query.since)}` } : {}),
      _sort: '_lastUpdated',
      _count: String(query.count),
    }) as Promise<Patient[]>;
  }

  /** The Patient `offset` places on from `since` in lastUpdated order (a planning probe), if any. */
  async patientAt(query: { since?: string; offset: number }): Promise<Patient | undefined> {
    const [found] = (await this.search('Patient', {
      ...(query.since ? { _lastUpdated: `ge${toOpenEmrInstant(query.since)}` } : {}),
      _sort: '_lastUpdated',
      _count: '1',
      _offset: String(query.offset),
    })) as Patient[];
    return found;
  }

  /** Every Patient whose lastUpdated is in one second (`eq` at second precision), in one answer. */
  patientsInSecond(second: string): Promise<Patient[]> {
    return this.search('Patient', { _lastUpdated: `eq${toOpenEmrInstant(second)}` }) as Promise<Patient[]>;
  }

  /**
   * Every Patient in the window, page by page: a `ge` cursor with `_sort`/`_count`, stopping at the
   * first Patient at or past `until` (see patient-pages.ts).
   */
  patients(pageSize: number, window?: LastUpdatedWindow): AsyncGenerator<Patient[]> {
    const ms = (v: string | undefined): number | undefined => (v === undefined ? undefined : Date.parse(v));
    return patientsInWindow(this, pageSize, ms(window?.since), ms(window?.until));
  }

  /** Which of these Patient ids OpenEMR has (`_id=a,b,c`, OR-ed): one request per 100 ids. */
  patientsPresent(ids: readonly string[]): Promise<Set<string>> {
    return this.present('Patient', ids);
  }

  /** Which of these ids of a type OpenEMR has (`_id=a,b,c`, OR-ed): one request per 100 ids. */
  async present(type: string, ids: readonly string[]): Promise<Set<string>> {
    const present = new Set<string>();
    const unique = [...new Set(ids)];
    for (let i = 0; i < unique.length; i += IDS_PER_LOOKUP) {
      const chunk = unique.slice(i, i + IDS_PER_LOOKUP);
      // An id with a comma cannot be asked in a list: read it alone.
      const listed = chunk.filter((id) => !id.includes(','));
      if (listed.length > 0) for (const p of await this.search(type, { _id: listed.join(',') })) if (p.id) present.add(p.id);
      for (const id of chunk.filter((x) => x.includes(','))) {
        try {
          await this.read(type, id);
          present.add(id);
        } catch (error) {
          if (!(error instanceof UpstreamError && error.missing)) throw error;
        }
      }
    }
    return present;
  }

  async search(type: string, params: SearchParams): Promise<Array<{ resourceType: string; id?: string }>> {
    for (const [key, value] of Object.entries(params)) {
      if (typeof value !== 'string')
        throw new Error(`search parameter ${key} must have one value: OpenEMR (PHP) keeps only the last of repeated keys`);
    }
    const response = await this.http.get(`/${type}`, { params });
    const parsed = searchBundleSchema.safeParse(response.data);
    if (!parsed.success) {
      throw new UpstreamError(
        'openemr',
        'InvalidResponse',
        `OpenEMR answered a ${type} search with something that is not a FHIR Bundle.`,
        response.status,
      );
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
    const response = await this.http.get(`/${type}/${encodeURIComponent(id)}`, {
      validateStatus: (s) => (s >= 200 && s < 300) || s === 404,
    });
    if (response.status === 404) {
      if (Array.isArray(response.data) && response.data.length === 0) {
        const error = new UpstreamError('openemr', 'NotFound', `OpenEMR has no ${type}/${id}.`, 404);
        error.missing = `${type}/${id}`;
        throw error;
      }
      throw new UpstreamError(
        'openemr',
        'InvalidResponse',
        `OpenEMR answered 404 for its ${type} read route: check OPENEMR_BASE_URL and OPENEMR_SITE, and that the FHIR API is enabled.`,
        404,
      );
    }
    const parsed = singleResourceSchema.safeParse(response.data);
    if (!parsed.success || parsed.data.resourceType !== type) {
      throw new UpstreamError(
        'openemr',
        'InvalidResponse',
        `OpenEMR answered a ${type} read with something that is not a ${type}.`,
        response.status,
      );
    }
    return parsed.data;
  }
}

/** ISO instant with whole seconds in UTC (OpenEMR rejects times without seconds; `+` would need encoding). */
export function toOpenEmrInstant(iso: string): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw new Error(`not a date-time: ${iso}`);
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}
