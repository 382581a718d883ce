/**
 * Bulk export as OpenEMR does it (src/RestControllers/FHIR/Operations/FhirOperationExportRestController.php):
 * - the kick-off does all the work before it answers 202 (processResourceExportForJob, :217), one
 *   type after the other: the `type=` list in its own order, else every exportable type the token
 *   may read in route order (EXPORT_ORDER: Observation before Patient, Patient near the end);
 * - the work has a time budget (2 minutes, :408-410); the type running when it ends gets an error
 *   file (an OperationOutcome "Export process timed out", listed in `error[]` as type
 *   OperationOutcome), every later type an inline OperationOutcome (:423-426); `output[]` lists
 *   only the types that finished, an empty one included;
 * - `type=` (comma list) chooses the types, `_type` is never read (openemr#8668); without it, every
 *   type the token may read; every resource is filtered by lastUpdated >= _since (the Unix epoch
 *   by default, :176), so NULL-dated rows and rows dated before 1970 (a clinical note's date) never
 *   come out (FhirBulkExportDomainResourceTrait.php:71-73);
 * - `transactionTime` is the job's PHP DateTime, json_encode'd as an object (:286);
 * - files are Binary documents that expire an hour after the job started (MAX_DOCUMENT_ACCESS_TIME,
 *   :49; FhirDocumentRestController::downloadDocument answers 404 with an empty body then);
 * - the status body has no `deleted` key: OpenEMR never reports deletions. A test can still make
 *   the stand-in add `deleted[]` and fail a file (ExportFaults) to exercise a client.
 * The stand-in is fast, so the budget is spent on a simulated cost per resource (msPerResource),
 * and the kick-off really waits for the simulated time (capped at the budget).
 */
import { randomUUID } from 'node:crypto';
import { formatLocalNaive, formatUtcOffset } from './fhir-dates';
import { SupportedType } from './resource-shape';
import { ResourceStore, StoredRecord } from './resource-store';
import { ServeContext, servedJson } from './served-json';

/**
 * Every type the stand-in serves, in the order OpenEMR exports them when `type=` is absent. The
 * registry is FhirServiceLocator::findServices(IFhirExportableResourceService), which walks the
 * CapabilityStatement's resources (RestControllerHelper::getCapabilityRESTObject), each placed by
 * its first route in apis/routes/_rest_routes_fhir_r4_us_core_3_1_0.inc.php (line of that route).
 * All thirteen services implement IFhirExportableResourceService and use
 * FhirBulkExportDomainResourceTrait (src/Services/FHIR/Fhir<Type>Service.php).
 */
export const EXPORT_ORDER: readonly SupportedType[] = [
  'AllergyIntolerance', // :73
  'Condition', // :167
  'DiagnosticReport', // :221
  'DocumentReference', // :247
  'Encounter', // :297
  'Immunization', // :380
  'Location', // :403
  'MedicationRequest', // :470
  'Observation', // :493
  'Organization', // :503
  'Patient', // :578
  'Practitioner', // :650
  'Procedure', // :703
];
export const EXPORT_TIMEOUT_TEXT = 'Export process timed out';
/** MAX_DOCUMENT_ACCESS_TIME = "PT1H". */
export const DOCUMENT_ACCESS_SECONDS = 3600;

export interface OperationOutcome {
  id: string;
  issue: Array<{ severity: 'error'; code: 'processing'; details: { text: string } }>;
  resourceType: 'OperationOutcome';
}

export function operationOutcome(text: string): OperationOutcome {
  return { id: randomUUID(), issue: [{ severity: 'error', code: 'processing', details: { text } }], resourceType: 'OperationOutcome' };
}

/** A PHP \DateTime as json_encode writes it. */
export interface PhpDateTime {
  date: string;
  timezone_type: 1 | 3;
  timezone: string;
}

export type ManifestEntry = { url: string; type: string };
/** An error[] element: a file of OperationOutcomes, or (after the budget ran out) the OperationOutcome itself. */
type JobError = { binaryId: string } | OperationOutcome;

export interface ExportJob {
  id: string;
  request: string;
  transactionTime: PhpDateTime;
  clientId: string;
  outputs: Array<{ type: SupportedType; binaryId: string }>;
  errors: JobError[];
  /** Injected deletions (ExportFaults.deleted): a file of DELETE Bundles. */
  deletedBinaryId?: string;
  /** Status polls still to answer 202 before the job shows as complete. */
  pendingPolls: number;
}

export interface BinaryDocument {
  type: string;
  lines: string[];
  /** Server clock second at which the document expires. */
  expiresAt: number;
  /** Injected failure when downloaded. */
  fail?: 'status-500' | 'reset';
}

/** What a test may make an export do beyond OpenEMR's own behaviour. */
export interface ExportFaults {
  /** Resources reported in a `deleted[]` file (OpenEMR itself never fills it). */
  deleted?: Array<{ resourceType: string; id: string }>;
  /** Output files of these types fail when downloaded: a 500, or a connection reset mid-body. */
  failFiles?: Partial<Record<SupportedType, 'status-500' | 'reset'>>;
}

export interface ExportSettings {
  /** Status polls per job answering 202 + X-Progress first (OpenEMR: 0, done at kick-off). */
  pendingPolls: number;
  /** The kick-off's time budget (OpenEMR: 120 s). */
  timeBudgetMs: number;
  /** Simulated export cost of one resource, spent against the budget (default 0). */
  msPerResource: number;
  faults: ExportFaults;
}

export interface StartedExport {
  job: ExportJob;
  /** How long the kick-off should take (simulated work, at most the budget). */
  elapsedMs: number;
}

export class BulkExports {
  private readonly jobs = new Map<string, ExportJob>();
  private readonly binaries = new Map<string, BinaryDocument>();
  /** OpenEMR documents.id is an integer sequence. */
  private nextDocumentId = 1;

  constructor(
    private readonly store: ResourceStore,
    readonly settings: ExportSettings,
    /** The PHP zone name transactionTime carries (timezone_type 3), else the offset (type 1). */
    private readonly timeZoneName?: string,
  ) {}

  /**
   * Runs the export now. `since` (local wall-clock seconds) keeps resources with lastUpdated >= since;
   * `types` are exported in the order given (the caller has checked access): the `type=` list as
   * written, else EXPORT_ORDER (processResourceExportForJob walks $job->getResources() as set).
   */
  start(opts: { request: string; clientId: string; since: number; types: SupportedType[]; serve: ServeContext }): StartedExport {
    const now = opts.serve.nowSeconds;
    const job: ExportJob = {
      id: randomUUID(),
      request: opts.request,
      transactionTime: this.phpDateTime(now, opts.serve.offsetMinutes),
      clientId: opts.clientId,
      outputs: [],
      errors: [],
      pendingPolls: this.settings.pendingPolls,
    };
    const expiresAt = now + DOCUMENT_ACCESS_SECONDS;
    const { timeBudgetMs, msPerResource, faults } = this.settings;
    let elapsedMs = 0;
    let shutdown = false;
    for (const type of opts.types) {
      if (shutdown) {
        job.errors.push(operationOutcome(EXPORT_TIMEOUT_TEXT));
        continue;
      }
      const records: StoredRecord[] = this.store.table(type).byTime.range(opts.since, Infinity);
      const cost = records.length * msPerResource;
      if (elapsedMs + cost > timeBudgetMs) {
        // ExportStreamWriter::append threw: this type's file is an OperationOutcome, later ones fail at once.
        elapsedMs = timeBudgetMs;
        shutdown = true;
        const binaryId = this.addBinary({
          type: 'OperationOutcome',
          lines: [JSON.stringify(operationOutcome(EXPORT_TIMEOUT_TEXT))],
          expiresAt,
        });
        job.errors.push({ binaryId });
        continue;
      }
      elapsedMs += cost;
      const binaryId = this.addBinary({
        type,
        lines: records.map((r) => servedJson(r, opts.serve)),
        expiresAt,
        fail: faults.failFiles?.[type],
      });
      job.outputs.push({ type, binaryId });
    }
    if (faults.deleted && faults.deleted.length > 0) {
      const lines = faults.deleted.map((d) =>
        JSON.stringify({
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [{ request: { method: 'DELETE', url: `${d.resourceType}/${d.id}` } }],
        }),
      );
      job.deletedBinaryId = this.addBinary({ type: 'Bundle', lines, expiresAt });
    }
    this.jobs.set(job.id, job);
    return { job, elapsedMs };
  }

  /** The status body's output, error and (only when injected) deleted arrays, URLs on `apiBase`. */
  manifest(job: ExportJob, fhirBase: string): { output: ManifestEntry[]; error: unknown[]; deleted?: ManifestEntry[] } {
    const url = (binaryId: string) => `${fhirBase}/Binary/${binaryId}`;
    const out: { output: ManifestEntry[]; error: unknown[]; deleted?: ManifestEntry[] } = {
      output: job.outputs.map((o) => ({ url: url(o.binaryId), type: o.type })),
      error: job.errors.map((e) => ('binaryId' in e ? { url: url(e.binaryId), type: 'OperationOutcome' } : e)),
    };
    if (job.deletedBinaryId) out.deleted = [{ url: url(job.deletedBinaryId), type: 'Bundle' }];
    return out;
  }

  job(id: string): ExportJob | undefined {
    return this.jobs.get(id);
  }

  /** A document, or undefined when unknown or expired (an expired one is deleted, as OpenEMR does). */
  binary(id: string, nowSeconds: number): BinaryDocument | undefined {
    const doc = this.binaries.get(id);
    if (doc && nowSeconds >= doc.expiresAt) {
      this.binaries.delete(id);
      return undefined;
    }
    return doc;
  }

  cancel(id: string): boolean {
    const job = this.jobs.get(id);
    if (!job) return false;
    for (const o of job.outputs) this.binaries.delete(o.binaryId);
    for (const e of job.errors) if ('binaryId' in e) this.binaries.delete(e.binaryId);
    if (job.deletedBinaryId) this.binaries.delete(job.deletedBinaryId);
    this.jobs.delete(id);
    return true;
  }

  private addBinary(doc: BinaryDocument): string {
    const id = String(this.nextDocumentId++);
    this.binaries.set(id, doc);
    return id;
  }

  private phpDateTime(epochSeconds: number, offsetMinutes: number): PhpDateTime {
    const date = `${formatLocalNaive(epochSeconds, offsetMinutes).replace('T', ' ')}.000000`;
    return this.timeZoneName
      ? { date, timezone_type: 3, timezone: this.timeZoneName }
      : { date, timezone_type: 1, timezone: formatUtcOffset(offsetMinutes) };
  }
}
