/**
 * What a test or the demo may do behind OpenEMR's back: write and delete records, move the clock,
 * enable clients, set faults, correct a lab result silently. The HTTP control API (/_control) and
 * the in-process `store` handle both call these, so the two cannot drift apart.
 */
import { FaultInjector, FaultProfile } from '../faults';
import { BulkExports } from './bulk-export';
import { formatLocalInstant } from './fhir-dates';
import { loadNdjsonDirectory, LoadReport } from './ndjson-loader';
import { OAuthServer } from './oauth-server';
import { RequestStats, RequestStatsSnapshot } from './request-stats';
import { FhirResource, isSupportedType, SupportedType } from './resource-shape';
import { ResourceStore } from './resource-store';
import { ServerClock } from './server-clock';

export interface OpenEmrStandInStore {
  /** Create-or-update; lastUpdated = server clock now, versionId stays "1" (as OpenEMR). */
  put(resource: FhirResource): { resource: FhirResource; created: boolean };
  /** Adds resources as a data load would (lastUpdated derived from the resource). Returns how many. */
  importResources(resources: Iterable<FhirResource>): number;
  get(type: SupportedType, id: string): FhirResource | undefined;
  /** Hard delete, no tombstone. */
  delete(type: SupportedType, id: string): boolean;
  count(type: SupportedType): number;
  ids(type: SupportedType): string[];
  /** Changes an Observation without touching its lastUpdated (default change: status "corrected"). */
  labCorrection(id: string, patch?: Record<string, unknown>): FhirResource;
  /** Moves the server clock forward; returns the new time as the server would print it. */
  advanceClock(seconds: number): string;
  /** Server clock, epoch milliseconds. */
  now(): number;
  enableClient(clientId: string): boolean;
  disableClient(clientId: string): boolean;
  setFaults(profile: FaultProfile): void;
  /** Status polls per export job that answer 202 before the job completes. */
  setExportPendingPolls(polls: number): void;
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
  offsetMinutes: number;
}): OpenEmrStandInStore {
  const { store, clock, oauth, faults, stats } = deps;
  const bulkExports = deps.exports;
  const typeOf = (type: string): SupportedType => {
    if (!isSupportedType(type)) throw new Error(`unsupported type ${type}`);
    return type;
  };
  return {
    put(resource) {
      const { record, created } = store.put(resource);
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
    advanceClock(seconds) {
      clock.advance(seconds);
      return formatLocalInstant(clock.nowSeconds(), deps.offsetMinutes);
    },
    now: () => clock.nowMs(),
    enableClient: (clientId) => oauth.setEnabled(clientId, true),
    disableClient: (clientId) => oauth.setEnabled(clientId, false),
    setFaults: (profile) => faults.configure(profile),
    setExportPendingPolls(polls) {
      bulkExports.pendingPolls = Math.max(0, Math.floor(polls));
    },
    loadNdjsonDirectory: (dir) => loadNdjsonDirectory(store, dir),
    stats: () => ({ ...stats.snapshot(), faultsInjected: { ...faults.injected } }),
    resetStats: () => stats.reset(),
  };
}
