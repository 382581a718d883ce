import type { Observation, Patient, SyncedResource } from '../fhir/types';
import { orderedTypes, specOf } from '../sync/resource-types';
import { UpstreamError } from '../http/errors';
import { BulkExportClient, ExportUnavailableError, type ExportedType, type ExportFile, type ExportManifest } from './bulk-export';
import { ReadAhead, readAheadLimits } from '../sync/read-ahead';
import { ReadSlots } from '../sync/read-slots';
import { iso } from './patient-pages';
import type { OpenEmrReader, ServerInfo } from './reader';

/**
 * Reading what changed in OpenEMR, for every orchestrator (incremental run, `?since=`, reconcile,
 * work items): export or search is decided here, once, by what the release and settings allow.
 *
 * Per type a window [since, until) on lastUpdated; since undefined means "everything".
 * - $export (one `_since`) when it is enabled and some window is long or open, for every configured
 *   type whose row says `read.connectorExports` (the export gives the rows its search would: a
 *   `_lastUpdated` column never NULL and never before 1970), and for `read.exportsWindows` types
 *   whose window has a lower bound (the search would filter on the same column). The other types
 *   are searched in their place in reference order, between the export's files.
 *   An export cut off by OpenEMR's 2-minute budget is kept for the types it finished (their files
 *   are in output[], whole, read to their end); each type it did not finish (missing from output[])
 *   or whose file failed or expired is searched in its place, for the same window. A manifest that
 *   cannot be used at all (refused, a file outside the FHIR base with the token) is abandoned and
 *   every exported type searched. Nothing is taken as "no changes".
 * - Search: Patients by `ge` cursor pages; the directory whole; the other types by one
 *   `_lastUpdated=ge` read when the window is short, else per Patient (`ge` since when there is a
 *   since). Observations are never asked with `_count` (OpenEMR applies it per sub-service).
 *
 * The upper bound of Observation windows is not applied: OpenEMR stamps some sub-services'
 * meta.lastUpdated with "now" (social history; every Observation on 7.0.2) whatever the row's own
 * date, so a client-side cut on it would lose them. What lies past `until` is written now and comes
 * back "unchanged" in the next window's overlap.
 */

export type SourceType = ExportedType;
/** The types read when a caller names none. */
export const SOURCE_TYPES: readonly SourceType[] = ['Patient', 'Observation'];

/** Per type a window on lastUpdated; since undefined means "everything". */
export type SourceWindows = Record<string, { since?: number; until: number }>;

export interface SourceVisitor {
  /** Patients of a type's window, then (after typeDone('Patient')) the other types in reference order. */
  patients(batch: Patient[]): Promise<void>;
  observations(batch: Observation[]): Promise<void>;
  /** Resources of the other configured types (Encounter, Condition, the directory), in reference order. */
  resources?(type: string, batch: SyncedResource[]): Promise<void>;
  /** Everything of `type` in its window was handed over (a window may be closed now). */
  typeDone(type: string, via: 'export' | 'search'): Promise<void>;
  /** Resources the source reports deleted (export deleted[]). */
  deleted?(type: string, id: string): Promise<void>;
  /** Patient ids the source has been seen to hold (their Observations are read per Patient). */
  present?(ids: string[]): void;
  /** Told why an export was abandoned and searches took over (for the run's log). */
  log?(message: string): void;
}

export interface SourceReadOptions {
  windows: SourceWindows;
  pageSize: number;
  /** Server info of this run (the caller read it; the release decides what is asked). */
  server: ServerInfo;
  /** The types to read, in reference order (default Patient, Observation); each needs a window. */
  types?: readonly string[];
  /** Force searches (e.g. a caller that cannot take a whole export). */
  searchOnly?: boolean;
  /** Instead of OPENEMR_EXPORT_GAP_SECONDS: windows longer than this are exported. */
  exportGapSeconds?: number;
}

export interface SourceReadResult {
  /** How each type was read in the end. */
  via: Record<string, 'export' | 'search'>;
  /** Set when an export was tried and abandoned (its reason). */
  exportAbandoned?: string;
  /** Types asked of the export that it did not give whole (cut off by the budget, a failed file): searched. */
  exportSearched?: string[];
}

/** Resources handed on per batch when streaming an export file. */
const EXPORT_BATCH = 200;

export async function readSource(reader: OpenEmrReader, options: SourceReadOptions, visitor: SourceVisitor): Promise<SourceReadResult> {
  const { windows } = options;
  const types = orderedTypes(options.types ?? SOURCE_TYPES).map((t) => t.type);
  const via: SourceReadResult['via'] = Object.fromEntries(types.map((t) => [t, 'search' as const]));
  // Types the connector takes from an export; the others are read by search between them, in reference order.
  // A type whose export may miss rows (NULL or pre-1970 dates) is exported only for a window with a
  // lower bound, where its search would miss them too (resource-types.ts exportsWindows).
  const exportedTypes = types.filter((t) => {
    const read = specOf(t).read;
    return read.connectorExports || (read.exportsWindows === true && windows[t]!.since !== undefined);
  });
  // The export's `_since` and gap from the exported types' windows only: a searched type read whole
  // (DocumentReference's pre-1970 dates) does not make the export ask for everything.
  const lows = exportedTypes.map((t) => windows[t]!.since);
  const lowest = lows.some((l) => l === undefined) ? undefined : Math.min(...(lows as number[]));
  const until = Math.max(...types.map((t) => windows[t]!.until));
  const gap = lowest === undefined ? Infinity : until - lowest;
  const useExport =
    !options.searchOnly &&
    exportedTypes.length > 0 &&
    reader.settings.exportEnabled &&
    options.server.release.exportSince &&
    gap > (options.exportGapSeconds ?? reader.settings.exportGapSeconds) * 1000;

  let remaining: SourceType[] = useExport ? [...exportedTypes] : [];
  let exportAbandoned: string | undefined;
  const exportSearched: string[] = [];
  const roster = new PatientRoster(reader, options.pageSize);
  const search = (type: string) => searchType(reader, options, visitor, type, roster);
  if (useExport) {
    const exporter = new BulkExportClient(reader);
    const searchedDuringExport: string[] = [];
    try {
      const manifest = await exporter.run({ types: exportedTypes, ...(lowest !== undefined ? { since: iso(lowest) } : {}) });
      if (manifest.unfinished.length > 0)
        visitor.log?.(
          `OpenEMR's bulk export finished ${exportedTypes.length - manifest.unfinished.length} of ${exportedTypes.length} types ` +
            `(${manifest.errors} error entries: OpenEMR stops an export after 2 minutes); ` +
            `reading ${manifest.unfinished.join(', ')} with searches instead.`,
        );
      // A type the export did not give whole (unfinished, or its file failed) is searched in its
      // place, for the same window: it is never taken as "no changes".
      const searchInstead = async (type: string) => {
        await search(type);
        exportSearched.push(type);
        searchedDuringExport.push(type);
        remaining = remaining.filter((t) => t !== type);
      };
      const lastExported = exportedTypes[exportedTypes.length - 1];
      const applyDeletions = async () => {
        if (!visitor.deleted) return;
        for await (const d of fileFailures(exporter.deletions(manifest))) await visitor.deleted(d.type, d.id);
      };
      try {
        // Reference order (each file whole): no resource is handed on before what it points at.
        for (const type of types) {
          if (!remaining.includes(type)) {
            await search(type);
            searchedDuringExport.push(type);
            continue;
          }
          if (manifest.unfinished.includes(type)) {
            if (type === lastExported) await applyDeletions();
            await searchInstead(type);
            continue;
          }
          const handed = await handFiles(exporter, manifest, type, visitor);
          if (!handed.ok) {
            visitor.log?.(`${handed.reason} Reading ${type} with a search instead.`);
            if (type === lastExported) await applyDeletions();
            await searchInstead(type);
            continue;
          }
          if (type === lastExported) await applyDeletions();
          via[type] = 'export';
          remaining = remaining.filter((t) => t !== type);
          await visitor.typeDone(type, 'export');
        }
      } finally {
        await exporter.end(manifest.statusUrl);
      }
    } catch (error) {
      if (!(error instanceof ExportUnavailableError)) throw error;
      exportAbandoned = (error as Error).message;
      visitor.log?.(`${exportAbandoned} Reading ${remaining.join(', ')} with searches instead.`);
    }
    // What the export did not finish, and the searched types after it, in reference order.
    for (const type of types)
      if (remaining.includes(type) || (!searchedDuringExport.includes(type) && !exportedTypes.includes(type))) {
        await search(type);
        if (exportedTypes.includes(type)) exportSearched.push(type);
      }
  } else {
    for (const type of types) await search(type);
  }
  return {
    via,
    ...(exportAbandoned ? { exportAbandoned } : {}),
    ...(exportSearched.length > 0 ? { exportSearched: orderedTypes(exportSearched).map((t) => t.type) } : {}),
  };
}

/**
 * Hands on every resource of `type` in the export's files, in batches. `ok: false` when a file could
 * not be read to its end (failed, expired, broke off, a line that is not a resource): what was
 * handed on stays written, and the caller searches the type's whole window.
 */
async function handFiles(
  exporter: BulkExportClient,
  manifest: ExportManifest,
  type: string,
  visitor: SourceVisitor,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  let batch: Record<string, unknown>[] = [];
  const hand = async () => {
    if (batch.length === 0) return;
    const out = batch;
    batch = [];
    if (type === 'Patient') await visitor.patients(out as unknown as Patient[]);
    else if (type === 'Observation') await visitor.observations(out as unknown as Observation[]);
    else await visitor.resources!(type, out as unknown as SyncedResource[]);
  };
  try {
    for (const file of manifest.outputs.filter((o) => o.type === type)) {
      for await (const r of fileResources(exporter, file)) {
        if (r.resourceType !== type) continue;
        batch.push(r);
        if (batch.length >= EXPORT_BATCH) await hand();
      }
    }
    await hand();
  } catch (error) {
    // Only the file's own failures (fileFailures): an error of the visitor passes through.
    if (error instanceof ExportUnavailableError) return { ok: false, reason: error.message };
    throw error;
  }
  return { ok: true };
}

/**
 * The Patient ids of one read, listed from OpenEMR once and walked again by every type read per
 * Patient (ids only, in pages): without it each such type pages through every Patient again. A
 * listing broken off is not kept; the next type lists afresh. The listing starts after the run's
 * upper bound is fixed, so every Patient of a row in the windows is on it (a back-dated row's
 * Patient that arrives later is reconciliation's, as its row is).
 */
class PatientRoster {
  private pages: string[][] | undefined;
  constructor(
    private readonly reader: OpenEmrReader,
    private readonly pageSize: number,
  ) {}

  async *idPages(): AsyncGenerator<string[]> {
    if (this.pages) {
      yield* this.pages;
      return;
    }
    const pages: string[][] = [];
    for await (const page of this.reader.patients(this.pageSize)) {
      const ids = page.flatMap((p) => (p.id ? [p.id] : []));
      pages.push(ids);
      yield ids;
    }
    this.pages = pages;
  }
}

/** One type's window by search, handed on to the visitor, then typeDone. */
async function searchType(
  reader: OpenEmrReader,
  options: SourceReadOptions,
  visitor: SourceVisitor,
  type: string,
  roster: PatientRoster,
): Promise<void> {
  const window = options.windows[type]!;
  if (window.since !== undefined && window.since >= window.until) return;
  const hand = (batch: SyncedResource[]) =>
    type === 'Observation' ? visitor.observations(batch as Observation[]) : visitor.resources!(type, batch);
  if (type !== 'Patient' && !specOf(type).read.patientScoped) {
    // Practitioner, Organization, Location: read whole (no paging, no patient), `ge` since when
    // there is a since; like the clinical types, the upper bound is left to the next window's overlap.
    const resources = await reader.whole(type, window.since !== undefined ? iso(window.since) : undefined);
    if (resources.length > 0) await hand(resources);
  } else if (type === 'Patient') {
    for await (const page of reader.patients(options.pageSize, {
      ...(window.since !== undefined ? { since: iso(window.since) } : {}),
      until: iso(window.until),
    }))
      await visitor.patients(page);
  } else if (window.since !== undefined && window.until - window.since <= reader.settings.observationSpanSeconds * 1000) {
    await hand(await reader.updatedSince(type, iso(window.since)));
  } else {
    // Long or open windows: per Patient, so no answer holds more than one Patient's resources,
    // OPENEMR_READ_CONCURRENCY reads at a time, a bounded few answers ahead of the writes.
    const since = window.since !== undefined ? iso(window.since) : undefined;
    const slots = new ReadSlots(reader.connection.readConcurrency);
    for await (const ids of roster.idPages()) {
      const ahead = new ReadAhead(
        ids,
        (id) => reader.ofPatient(type, id, since),
        slots,
        readAheadLimits(reader.connection.readConcurrency),
      );
      for (const id of ids) {
        const ofPatient = await ahead.next();
        visitor.present?.([id]);
        if (ofPatient.length > 0) await hand(ofPatient);
      }
    }
  }
  await visitor.typeDone(type, 'search');
}

function fileResources(exporter: BulkExportClient, file: ExportFile): AsyncGenerator<Record<string, unknown>> {
  return fileFailures(exporter.resources(file));
}

/**
 * A file that fails to download (expired after OpenEMR's hour: 404; broke off; timed out) makes the
 * export incomplete. Only the file's own failures are caught here: an error thrown while the
 * caller handles a batch passes through untouched.
 */
async function* fileFailures<T>(source: AsyncGenerator<T>): AsyncGenerator<T> {
  try {
    yield* source;
  } catch (error) {
    if (error instanceof UpstreamError && error.side === 'openemr')
      throw new ExportUnavailableError(
        `An OpenEMR bulk export file could not be read (${error.statusCode ?? error.code}).`,
        error.statusCode,
      );
    throw error;
  }
}
