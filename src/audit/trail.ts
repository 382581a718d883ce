import type { BundleCompanions, WriteResult } from '../ahds/writer';
import { contentHash } from '../fhir/canonical';
import type { SyncedResource } from '../fhir/types';
import { Deidentifier, shiftDate } from '../mapping/deid';
import { shiftKeyOf } from '../mapping/deid-resource';
import { auditEventsForRun, provenanceFor, type AuditPolicy, type WrittenResource } from './records';

/**
 * AUDIT_TRAIL: what the connector records of its own writes, in the target, next to the data.
 * - off: nothing (the target's own audit log, and AHDS's X-MS-AZUREFHIR-AUDIT-RUN-ID header, remain).
 * - per-run (default): one Provenance per written bundle, targeting all its resources, and the run's
 *   AuditEvents. One entry more per bundle (of up to AHDS_BATCH_SIZE resources): cheap.
 * - per-resource: one Provenance per written resource, and the run's AuditEvents. About twice the
 *   entries a sync writes, for lineage that names each resource's own content hash.
 * A Provenance's id hashes its targets, their content hashes and the policy: a re-sync of unchanged
 * data sends identical Provenances, which the target keeps as the version it has (no new version).
 * per-run's bundles are the same when the data and the batch size are (a full re-sync); an
 * incremental sync of unchanged data reads nothing and writes nothing at all.
 */
export type AuditMode = 'off' | 'per-run' | 'per-resource';

export interface AuditSettings {
  mode: AuditMode;
  /** The source OpenEMR's FHIR base (Provenance.agent author, entity identifier system). */
  sourceFhirBase: string;
  policy: AuditPolicy;
  /**
   * DEID_KEY when de-identifying (policy.deid): Provenance.recorded, the source's lastUpdated, then
   * moves by the same shift as the dates of the resource it describes (its patient's; a resource of
   * no patient, its own), or the unshifted instant would tie the record's hashed id back to the source.
   */
  deidKey?: string;
}

/** Writes the trail's clean-up and AuditEvents: the writer itself, without companions. */
export interface AuditWriter {
  writeBatch(resources: readonly SyncedResource[], context?: { runId?: string }): Promise<WriteResult[]>;
  delete(resourceType: string, id: string): Promise<void>;
}

/** What a run's trail wrote: counts for the run's summary (no ids). */
export interface AuditCounts {
  provenanceCreated: number;
  provenanceUnchanged: number;
  provenanceFailed: number;
  auditEvents: number;
  auditEventsFailed: number;
}

interface SourceOf {
  sourceId: string;
  lastUpdated: string;
}

/** The audit trail of the connector: a RunAudit per run, none when AUDIT_TRAIL=off. */
export class AuditTrail {
  private readonly deid?: Deidentifier;

  constructor(
    readonly settings: AuditSettings,
    private readonly writer: AuditWriter,
  ) {
    if (settings.policy.deid) {
      if (!settings.deidKey) throw new Error('The audit trail de-identifies (policy deid=on) but has no DEID_KEY');
      this.deid = new Deidentifier(settings.deidKey);
    }
  }

  begin(run: { runId: string; trigger: string; startedAt: number }): RunAudit | undefined {
    return this.settings.mode === 'off' ? undefined : new RunAudit(this.settings, this.writer, run, this.deid);
  }
}

/**
 * One run's trail: the companions of its bundles (Provenance), and what it wrote and deleted, for its
 * AuditEvents. A Provenance goes out with the bundle, before the outcome of its resources is known:
 * when a covered resource then fails, a Provenance this bundle created is taken back (and, per-run,
 * replaced by one covering what was written), so no Provenance claims a write that did not happen.
 */
export class RunAudit implements BundleCompanions {
  /** The source of each mapped resource (by object: the one the sink carries to the writer). */
  private readonly sources = new WeakMap<object, SourceOf>();
  private readonly written = new Set<string>();
  private readonly deleted = new Set<string>();
  readonly counts: AuditCounts = {
    provenanceCreated: 0,
    provenanceUnchanged: 0,
    provenanceFailed: 0,
    auditEvents: 0,
    auditEventsFailed: 0,
  };
  /** The written resources each Provenance covers (by Provenance id), until its bundle settled. */
  private readonly covers = new Map<string, WrittenResource[]>();

  constructor(
    private readonly settings: AuditSettings,
    private readonly writer: AuditWriter,
    readonly run: { runId: string; trigger: string; startedAt: number },
    private readonly deid?: Deidentifier,
  ) {}

  /**
   * Notes where a mapped resource came from: its source id and lastUpdated (never its content), the
   * latter shifted as the resource's dates are when de-identifying.
   */
  noteSource(mapped: SyncedResource, source: SyncedResource): void {
    const lastUpdated = source.meta?.lastUpdated;
    if (!lastUpdated || !source.id) return;
    const shifted = this.deid
      ? shiftDate(lastUpdated, this.deid.shiftDays(shiftKeyOf(source as unknown as Record<string, unknown>)))
      : lastUpdated;
    this.sources.set(mapped, { sourceId: source.id, lastUpdated: shifted });
  }

  /** Notes resources the run deleted in the target (target ids). */
  noteDeleted(resourceType: string, ids: readonly string[]): void {
    for (const id of ids) this.deleted.add(`${resourceType}/${id}`);
  }

  for(resources: readonly SyncedResource[]): SyncedResource[] {
    const described: WrittenResource[] = [];
    for (const r of resources) {
      const source = this.sources.get(r);
      // Only what the run mapped from a known source is vouched for.
      if (!source || !r.id) continue;
      described.push({
        resourceType: r.resourceType,
        id: r.id,
        contentHash: contentHash(r),
        sourceLastUpdated: source.lastUpdated,
        sourceId: source.sourceId,
      });
    }
    const groups = this.settings.mode === 'per-resource' ? described.map((d) => [d]) : described.length ? [described] : [];
    return groups.map((group) => {
      const provenance = this.provenance(group);
      this.covers.set(provenance.id!, group);
      return provenance;
    });
  }

  async settled(resources: readonly WriteResult[], companions: readonly SyncedResource[], answers: readonly WriteResult[]): Promise<void> {
    const outcome = new Map(resources.map((r) => [`${r.resourceType}/${r.id}`, r.outcome]));
    for (const r of resources) if (r.outcome === 'created' || r.outcome === 'updated') this.written.add(`${r.resourceType}/${r.id}`);
    const retry: SyncedResource[] = [];
    const takeBack: string[] = [];
    companions.forEach((provenance, i) => {
      const covered = this.covers.get(provenance.id!) ?? [];
      this.covers.delete(provenance.id!);
      const answer = answers[i];
      const ok = covered.filter((c) => outcome.get(`${c.resourceType}/${c.id}`) !== 'failed');
      if (answer?.outcome === 'failed') {
        // HAPI FHIR refuses a Provenance whose target it does not hold yet (a bundle split in halves
        // may write both at once): once what it covers is written, it is sent again, alone.
        if (ok.length > 0) retry.push(ok.length === covered.length ? provenance : this.provenance(ok));
        return;
      }
      if (ok.length === covered.length) {
        if (answer?.outcome === 'unchanged') this.counts.provenanceUnchanged++;
        else this.counts.provenanceCreated++;
        return;
      }
      // A covered resource failed. A Provenance that already existed describes content written before
      // (its id hashes that content): it stays. One this bundle created claims too much.
      if (answer?.outcome === 'unchanged') return;
      takeBack.push(provenance.id!);
      if (ok.length > 0) retry.push(this.provenance(ok));
    });
    for (const id of takeBack) await this.writer.delete('Provenance', id).catch(() => undefined);
    if (retry.length === 0) return;
    const again = await this.writer.writeBatch(retry, { runId: this.run.runId });
    for (const a of again) {
      if (a.outcome === 'failed') this.counts.provenanceFailed++;
      else if (a.outcome === 'unchanged') this.counts.provenanceUnchanged++;
      else this.counts.provenanceCreated++;
    }
  }

  /** Writes the run's AuditEvents (none when it wrote and deleted nothing); a failure is counted, never thrown. */
  async close(status: 'ok' | 'partial' | 'failed', endedAt: number): Promise<AuditCounts> {
    const events = auditEventsForRun(
      {
        runId: this.run.runId,
        trigger: this.run.trigger,
        startedAt: new Date(this.run.startedAt).toISOString(),
        endedAt: new Date(endedAt).toISOString(),
        status,
        written: [...this.written],
        deleted: [...this.deleted],
      },
      { sourceFhirBase: this.settings.sourceFhirBase },
    ) as unknown as SyncedResource[];
    this.written.clear();
    this.deleted.clear();
    if (events.length === 0) return this.counts;
    try {
      const answers = await this.writer.writeBatch(events, { runId: this.run.runId });
      for (const a of answers) {
        if (a.outcome === 'failed') this.counts.auditEventsFailed++;
        else this.counts.auditEvents++;
      }
    } catch {
      // The data is written; a target that cannot take the record now must not fail the run.
      this.counts.auditEventsFailed += events.length;
    }
    return this.counts;
  }

  private provenance(group: readonly WrittenResource[]): SyncedResource {
    return provenanceFor(group, {
      sourceFhirBase: this.settings.sourceFhirBase,
      policy: this.settings.policy,
    }) as unknown as SyncedResource;
  }
}
