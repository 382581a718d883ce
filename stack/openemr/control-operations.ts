/**
 * What a test or the demo may do behind OpenEMR's back: write and delete records, move the clock,
 * enable clients, set faults, correct a lab result silently. The HTTP control API (/_control) and
 * the in-process `store` handle both call these, so the two cannot drift apart.
 */
import { FaultInjector, FaultProfile } from '../faults';
import { BulkExports, ExportSettings } from './bulk-export';
import { openEmrShapedResources } from './openemr-shapes';
import { formatLocalInstant } from './fhir-dates';
import { loadNdjsonDirectory, LoadReport } from './ndjson-loader';
import { OAuthServer } from './oauth-server';
import { RequestStats, RequestStatsSnapshot } from './request-stats';
import { FhirResource, isSupportedType, SupportedType } from './resource-shape';
import { ResourceStore } from './resource-store';
import { ServerClock } from './server-clock';
import type { ServerZone } from './server-zone';

export interface OpenEmrStandInStore {
  /**
   * Create-or-update; lastUpdated = server clock now, versionId stays "1" (as OpenEMR). `lastUpdated`
   * sets the row's date column instead: epoch seconds in the past (a back-dated lab or form, many
   * rows in one second) or null (a NULL column: never matched by _lastUpdated, never exported).
   */
  put(resource: FhirResource, opts?: { lastUpdated?: number | null }): { resource: FhirResource; created: boolean };
  /** Adds resources as a data load would (lastUpdated derived from the resource). Returns how many. */
  importResources(resources: Iterable<FhirResource>): number;
  get(type: SupportedType, id: string): FhirResource | undefined;
  /** Hard delete, no tombstone. */
  delete(type: SupportedType, id: string): boolean;
  count(type: SupportedType): number;
  ids(type: SupportedType): string[];
  /**
   * The 7.0.3 upgrade artefact: every Patient and every vital-signs Observation gets one
   * lastUpdated second (now, or `atEpochSeconds`), as `ADD last_updated … DEFAULT CURRENT_TIMESTAMP`
   * without a backfill leaves them. Returns how many of each it stamped.
   */
  upgradeArtefact(opts?: { atEpochSeconds?: number }): Partial<Record<SupportedType, number>>;
  /** Adds the OpenEMR-shaped resources (openemr-shapes.ts); returns how many. */
  addOpenEmrShapes(): number;
  /** Changes an Observation without touching its lastUpdated (default change: status "corrected"). */
  labCorrection(id: string, patch?: Record<string, unknown>): FhirResource;
  /** Moves the server clock forward; returns the new time as the server would print it. */
  advanceClock(seconds: number): string;
  /** Server clock, epoch milliseconds. */
  now(): number;
  enableClient(clientId: string): boolean;
  disableClient(clientId: string): boolean;
  setFaults(profile: FaultProfile): void;
  /**
   * Export behaviour for the next kick-offs: status polls answering 202 first, the time budget, the
   * simulated cost per resource, and injected faults (a deleted[] file, failing output files).
   */
  configureExport(settings: Partial<ExportSettings>): void;
  loadNdjsonDirectory(dir: string): Promise<LoadReport>;
  stats(): RequestStatsSnapshot & { faultsInjected: Record<string, number> };
  resetStats(): void;
}

export function createControlOperations(deps: {
  store: ResourceStore;
  clock: ServerClock;
  oauth: OAuthServer;
  faults: FaultInjector;
  exports: BulkExports;
  stats: RequestStats;
  zone: ServerZone;
  /** `{site_addr_oath}/apis/{site}/fhir`: the base of the URLs OpenEMR writes into what it serves. */
  fhirApiUrl: string;
}): OpenEmrStandInStore {
  const { store, clock, oauth, faults, stats } = deps;
  const bulkExports = deps.exports;
  const typeOf = (type: string): SupportedType => {
    if (!isSupportedType(type)) throw new Error(`unsupported type ${type}`);
    return type;
  };
  return {
    put(resource, opts) {
      // procedure_report.report_date, the column of Procedure orders, is NULL until a report is filed.
      if (opts?.lastUpdated === null && resource.resourceType !== 'Observation' && resource.resourceType !== 'Procedure')
        throw new Error('only lab, form and procedure-order rows (Observations, Procedures) have a nullable date column');
      const { record, created } = store.put(resource, opts);
      return { resource: JSON.parse(record.json) as FhirResource, created };
    },
    importResources(resources) {
      let n = 0;
      for (const r of resources) {
        store.importResource(r);
        n++;
      }
      store.finishImport();
      return n;
    },
    get: (type, id) => store.get(typeOf(type), id),
    delete: (type, id) => store.remove(typeOf(type), id),
    count: (type) => store.count(typeOf(type)),
    ids: (type) => store.ids(typeOf(type)),
    labCorrection: (id, patch) => store.labCorrection(id, patch),
    addOpenEmrShapes() {
      const shaped = openEmrShapedResources({ fhirApiUrl: deps.fhirApiUrl });
      for (const { resource, lastUpdated } of shaped) store.put(resource, { lastUpdated });
      return shaped.length;
    },
    upgradeArtefact(opts) {
      const at = opts?.atEpochSeconds ?? clock.nowSeconds();
      const vitals = [...store.table('Observation').byId.values()].filter((r) => r.subService === 'vital-signs').map((r) => r.id);
      return { Patient: store.restamp('Patient', store.ids('Patient'), at), Observation: store.restamp('Observation', vitals, at) };
    },
    advanceClock(seconds) {
      clock.advance(seconds);
      return formatLocalInstant(clock.nowSeconds(), deps.zone.offsetNow());
    },
    now: () => clock.nowMs(),
    enableClient: (clientId) => oauth.setEnabled(clientId, true),
    disableClient: (clientId) => oauth.setEnabled(clientId, false),
    setFaults: (profile) => faults.configure(profile),
    configureExport(settings) {
      const current = bulkExports.settings;
      const whole = (v: unknown, what: string) => {
        if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`${what} must be a non-negative number`);
        return v;
      };
      if (settings.pendingPolls !== undefined) current.pendingPolls = Math.floor(whole(settings.pendingPolls, 'pendingPolls'));
      if (settings.timeBudgetMs !== undefined) current.timeBudgetMs = whole(settings.timeBudgetMs, 'timeBudgetMs');
      if (settings.msPerResource !== undefined) current.msPerResource = whole(settings.msPerResource, 'msPerResource');
      if (settings.faults !== undefined) current.faults = settings.faults ?? {};
    },
    loadNdjsonDirectory: (dir) => loadNdjsonDirectory(store, dir),
    stats: () => ({ ...stats.snapshot(), faultsInjected: { ...faults.injected } }),
    resetStats: () => stats.reset(),
  };
}
