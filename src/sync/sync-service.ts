import { randomUUID } from 'node:crypto';
import type { AhdsWriter, WriteContext, WriteResult } from '../ahds/writer';
import type { AuditCounts, AuditTrail, RunAudit } from '../audit/trail';
import { referencedId } from '../fhir/references';
import { byResourceType, type Observation, type Patient, type SyncedResource } from '../fhir/types';
import type { MapOutcome, ResourceMapper } from '../mapping/contract';
import type { LastUpdatedWindow, OpenEmrReader } from '../openemr/reader';
import type { RunCounts, RunSummary, Telemetry } from '../telemetry/telemetry';
import type { UnmappedCodeEntry } from '../mapping/report';
import { BatchSink } from './batch-sink';
import { ReadAhead, readAheadLimits } from './read-ahead';
import { ReadSlots } from './read-slots';
import type { DeadLetter, DeadLetterStore } from './dead-letters';
import { Tally, type FailureItem } from './tally';
import { carriedReferences, orderedTypes, rankGroups, specOf } from './resource-types';

export type Trigger = RunSummary['trigger'];

export interface SyncSettings {
  batchSize: number;
  readConcurrency: number;
  pageSize: number;
  /** SYNC_RESOURCE_TYPES in reference order (default Patient, Observation). */
  resourceTypes?: readonly string[];
}

export interface SyncDeps {
  reader: OpenEmrReader;
  writer: AhdsWriter;
  mapper: ResourceMapper;
  telemetry: Telemetry;
  deadLetters: DeadLetterStore;
  settings: SyncSettings;
  /** AUDIT_TRAIL: Provenance with the bundles and AuditEvents per run; absent or off: none. */
  audit?: AuditTrail;
  now?: () => number;
}

/** What a sync call answers: counts, and identifiers of what failed with why. Never content. */
export interface SyncSummary extends RunCounts {
  runId: string;
  operation: string;
  trigger: Trigger;
  status: 'ok' | 'partial' | 'failed';
  byType: Tally['byType'];
  failures: FailureItem[];
  unmapped: UnmappedCodeEntry[];
  window?: LastUpdatedWindow;
  message?: string;
  /** What the audit trail wrote (AUDIT_TRAIL on). */
  audit?: AuditCounts;
}

/** Dead-letter ids loaded per type and run to know what is pending (beyond it, older letters wait for a replay). */
const PENDING_LETTERS_LOADED = 50_000;
/** Up to this many written resources, their dead letters are looked up one by one instead of loaded. */
const POINT_READS = 5;

export interface RunContext {
  runId: string;
  operation: string;
  trigger: Trigger;
  startedAt: number;
  tally: Tally;
  /**
   * Ids of the dead letters pending, per resource type, each loaded once (keys only) when a run
   * needs more than a few of that type. Per type, so a flood of Observation letters never hides the
   * Patient letters that hold Observations back.
   */
  pendingLetters?: Map<string, Promise<Set<string>>>;
  /** Patient ids OpenEMR was seen to hold in this run (read or asked), and those it does not hold. */
  presentPatients?: Set<string>;
  absentPatients?: Set<string>;
  /** The same for the other referenced types (Encounter): seen at the source, or known absent. */
  present?: Map<string, Set<string>>;
  absent?: Map<string, Set<string>>;
  /** Ids of referenced types (Encounter) dead-lettered before this run, loaded once when first needed. */
  blockedEarlier?: Map<string, Promise<Set<string>>>;
  onProgress?: (tally: Tally) => void;
  /** The run's audit trail (AUDIT_TRAIL on). */
  audit?: RunAudit;
}

const MAX_LISTED_FAILURES = 100;

/** The reads of a run of ranks, started ahead of the writer: one answer per type (in rank order) and key. */
interface RankReads {
  groups: string[][];
  /** Answers per type: one per Patient of a page, or one (the type read whole). */
  keys: number;
  answers: ReadAhead<SyncedResource, { type: string; key: string }>;
}

/**
 * The orchestration: read from OpenEMR, map, write to AHDS, record outcomes. A Patient is always
 * written before its Observations; when it fails, its Observations are not written and say why.
 */
export class SyncService {
  private readonly now: () => number;

  constructor(private readonly deps: SyncDeps) {
    this.now = deps.now ?? Date.now;
  }

  get mapper(): ResourceMapper {
    return this.deps.mapper;
  }

  /** The carried types in reference order (SYNC_RESOURCE_TYPES). */
  get resourceTypes(): string[] {
    return orderedTypes(this.deps.settings.resourceTypes ?? ['Patient', 'Observation']).map((t) => t.type);
  }

  begin(operation: string, trigger: Trigger, runId: string = randomUUID(), onProgress?: (tally: Tally) => void): RunContext {
    const startedAt = this.now();
    const audit = this.deps.audit?.begin({ runId, trigger, startedAt });
    return { runId, operation, trigger, startedAt, tally: new Tally(), onProgress, ...(audit ? { audit } : {}) };
  }

  async syncPatient(id: string, trigger: Trigger = 'http', runId?: string): Promise<SyncSummary> {
    const run = this.begin('syncPatient', trigger, runId);
    const patient = await this.deps.reader.getPatient(id);
    run.tally.read++;
    await this.writeResources([patient], run);
    return this.finish(run);
  }

  /**
   * Syncs one Observation after what it points at (its Patient, its Encounter when carried), each
   * unchanged if already current; when one of those fails, the Observation is held back saying why.
   */
  async syncObservation(id: string, trigger: Trigger = 'http', runId?: string): Promise<SyncSummary> {
    const run = this.begin('syncObservation', trigger, runId);
    const observation = await this.deps.reader.getObservation(id);
    run.tally.read++;
    if (!subjectPatientId(observation)) {
      await this.fail(run, [
        { resourceType: 'Observation', id, stage: 'map', reason: 'Observation.subject does not reference a Patient.' },
      ]);
      return this.finish(run);
    }
    return this.writeWithReferences(run, observation);
  }

  /**
   * One Patient and its resources of every carried type, rank by rank, each after the directory rows
   * it points at (read by id). When the Patient fails, its resources are held back saying why.
   */
  async syncPatientWithObservations(id: string, trigger: Trigger = 'http', runId?: string): Promise<SyncSummary> {
    const run = this.begin('syncPatientWithObservations', trigger, runId);
    const reads = new ReadSlots(this.deps.settings.readConcurrency);
    // Its resources are read while the Patient is read and written.
    const answers = this.readPerPatient([id], reads);
    const patient = await reads.run(() => this.deps.reader.getPatient(id));
    run.tally.read++;
    const [result] = await this.writeResources([patient], run);
    const failed = new Set(result?.outcome === 'failed' ? [id] : []);
    await this.writeRanks(run, this.sink(run), answers, failed, true);
    if (failed.size === 0) return this.finish(run);
    const held = Object.entries(run.tally.byType)
      .filter(([type, counts]) => type !== 'Patient' && counts.failed > 0)
      .map(([type, counts]) => `${counts.failed} ${type}(s)`);
    return this.finish(
      run,
      `Patient/${id} could not be written, so ${held.length > 0 ? `its ${held.join(', ')} were not` : 'nothing of it was'}.`,
    );
  }

  /**
   * Every Patient (optionally those updated in a window) with its resources of every carried type,
   * streamed through one loop over the types grouped by rank (rankGroups): the ranks below Patient's
   * (the directory) read whole, then Patient pages in lastUpdated order, each page's Patients written
   * before the ranks above Patient's are read for them Patient by Patient. The sink is flushed after
   * each rank, so whatever a resource points at is written (or known failed) before it is mapped.
   * Reads hold one of `readConcurrency` slots only while the request is open, and run a bounded few
   * answers ahead (ReadAhead) across types and ranks: the next type is read while the current one is
   * written, and the next page is read and its Patients written while this page's ranks stream.
   */
  async fullSync(options: {
    trigger: Trigger;
    window?: LastUpdatedWindow;
    runId?: string;
    onProgress?: (tally: Tally) => void;
    /** The run's name in its summary and events (default fullSync). */
    operation?: string;
    /** Called with the run's counts once everything is written, before the summary is made. */
    beforeFinish?: (tally: Tally) => Promise<void>;
  }): Promise<SyncSummary> {
    const run = this.begin(options.operation ?? 'fullSync', options.trigger, options.runId, options.onProgress);
    const sink = this.sink(run);
    const { readConcurrency, pageSize } = this.deps.settings;
    const reads = new ReadSlots(readConcurrency);
    await this.writeRanks(run, sink, this.readWhole(reads, options.window?.since), new Set());
    const pages = this.deps.reader.patients(pageSize, options.window);
    const readPage = async (): Promise<{ page: Patient[]; failed: Promise<Set<string>> } | undefined> => {
      const step = await reads.run(() => pages.next());
      if (step.done) return undefined;
      const page = step.value;
      run.tally.read += page.length;
      const failed = this.writeResources(page, run).then(
        (results) => new Set(page.filter((_, i) => results[i]?.outcome === 'failed').map((p) => p.id!)),
      );
      failed.catch(() => undefined); // surfaced when awaited
      return { page, failed };
    };
    let next = readPage();
    for (let current = await next; current; current = await next) {
      // Read ahead while the page's Patients are written (nothing is mapped before they are).
      const answers = this.readPerPatient(
        current.page.map((p) => p.id!),
        reads,
      );
      const failedIds = await current.failed;
      next = readPage();
      next.catch(() => undefined);
      await this.writeRanks(run, sink, answers, failedIds);
      run.onProgress?.(run.tally);
    }
    await sink.flush();
    await options.beforeFinish?.(run.tally);
    return this.finish(run, undefined, options.window);
  }

  /** The ranks below Patient's (the directory: Organization and Practitioner, then Location), each type read whole. */
  private readWhole(reads: ReadSlots, since?: string): RankReads {
    const patientRank = specOf('Patient').rank;
    return this.readRanks(
      rankGroups(this.resourceTypes).filter((g) => specOf(g[0]!).rank < patientRank),
      [''],
      (type) => this.deps.reader.whole(type, since),
      reads,
    );
  }

  /** The ranks above Patient's (Encounter; Condition, Observation, …; DiagnosticReport), each type read per Patient. */
  private readPerPatient(patientIds: readonly string[], reads: ReadSlots): RankReads {
    const patientRank = specOf('Patient').rank;
    return this.readRanks(
      rankGroups(this.resourceTypes).filter((g) => specOf(g[0]!).rank > patientRank),
      patientIds,
      (type, patientId) => this.deps.reader.ofPatient(type, patientId),
      reads,
    );
  }

  /** Starts reading one answer per type (in rank order) and key, ahead of the writer, through the shared slots. */
  private readRanks(
    groups: string[][],
    keys: readonly string[],
    read: (type: string, key: string) => Promise<SyncedResource[]>,
    reads: ReadSlots,
  ): RankReads {
    const all = groups.flat().flatMap((type) => keys.map((key) => ({ type, key })));
    const answers = new ReadAhead(all, (k) => read(k.type, k.key), reads, readAheadLimits(this.deps.settings.readConcurrency));
    return { groups, keys: keys.length, answers };
  }

  /**
   * The one write loop, rank by rank: each type's answers taken in order, noted as held by the
   * source, checked for what they point at (held back and dead-lettered saying why when that failed,
   * is dead-lettered or is absent) and mapped into the sink, which is flushed after each rank: the
   * next rank is mapped only once everything it may point at is written or known failed, within a
   * run and across batches. `withReferences` (single-item calls; runs read the directory whole):
   * what they point at and this run has not met is read by id and written first.
   */
  private async writeRanks(
    run: RunContext,
    sink: BatchSink,
    reads: RankReads,
    blockedPatients: ReadonlySet<string>,
    withReferences = false,
  ): Promise<void> {
    for (const group of reads.groups) {
      // The group's answers come type by type, key by key (readRanks).
      for (let i = 0; i < group.length * reads.keys; i++) {
        const resources = await reads.answers.next();
        run.tally.read += resources.length;
        // What a held-back resource points at is not worth writing for it.
        if (withReferences)
          await this.ensureReferenced(
            run,
            sink,
            resources.filter((r) => !this.pointsAtPatient(r, blockedPatients)),
          );
        await this.mapDependentsInto(resources, run, sink, blockedPatients);
      }
      await sink.flush();
    }
  }

  /** Whether a resource's carried Patient reference names one of these Patients. */
  private pointsAtPatient(resource: SyncedResource, patientIds: ReadonlySet<string>): boolean {
    if (patientIds.size === 0) return false;
    return carriedReferences(resource.resourceType, this.resourceTypes).some(
      (ref) => ref.type === 'Patient' && referenceTargets(resource, ref.element, 'Patient').some((id) => patientIds.has(id)),
    );
  }

  /** Maps and writes resources as one unit (patients before their observations). */
  async writeResources(resources: readonly SyncedResource[], run: RunContext): Promise<WriteResult[]> {
    const mapped: SyncedResource[] = [];
    const positions: number[] = [];
    const failures: FailureItem[] = [];
    resources.forEach((resource, i) => {
      const outcome = this.map(resource, run);
      if (outcome.ok) {
        mapped.push(outcome.resource);
        positions.push(i);
      } else failures.push({ resourceType: resource.resourceType, id: resource.id ?? '', stage: 'map', reason: outcome.reason });
    });
    this.notePresent(
      run,
      resources.filter((r) => r.resourceType === 'Patient' && r.id).map((r) => r.id!),
    );
    await this.fail(run, failures);
    const written = (await this.deps.writer.writeAll(mapped, writeContext(run))).map((r, j) => ({
      ...r,
      id: resources[positions[j]!]!.id ?? r.id,
    }));
    await this.recordWrites(run, written);
    // A resource that failed mapping answers 'failed' too: its dependants must not be written.
    const answer: WriteResult[] = resources.map((r) => ({ resourceType: r.resourceType, id: r.id ?? '', outcome: 'failed', attempts: 0 }));
    positions.forEach((pos, j) => (answer[pos] = written[j]));
    return answer;
  }

  /** A sink whose results are tallied and dead-lettered under the run. */
  sink(run: RunContext): BatchSink {
    return new BatchSink(
      this.deps.writer,
      this.deps.settings.batchSize,
      async (results) => {
        await this.recordWrites(run, results);
        run.onProgress?.(run.tally);
      },
      writeContext(run),
    );
  }

  /** Maps one resource into a sink; a mapping failure is dead-lettered and the stream flows on. */
  async mapInto(resource: SyncedResource, run: RunContext, sink: BatchSink): Promise<void> {
    const outcome = this.map(resource, run);
    if (outcome.ok) await sink.add(outcome.resource, resource.id);
    else await this.fail(run, [{ resourceType: resource.resourceType, id: resource.id ?? '', stage: 'map', reason: outcome.reason }]);
  }

  /**
   * Patients whose Observations must wait: those that failed in this run and those still
   * dead-lettered from earlier runs (their Observations would point at nothing in AHDS).
   */
  async blockedPatients(run: RunContext): Promise<Set<string>> {
    // Read now, after this run's recovered Patients have lost their letters (see clearRecovered).
    const earlier = await this.deps.deadLetters.list({ resourceType: 'Patient' });
    return new Set([...run.tally.failedPatients, ...earlier.map((d) => d.id)]);
  }

  private pendingIds(run: RunContext, resourceType: string): Promise<Set<string>> {
    run.pendingLetters ??= new Map();
    let ids = run.pendingLetters.get(resourceType);
    if (!ids) {
      ids = this.deps.deadLetters.ids(resourceType, PENDING_LETTERS_LOADED).then((list) => new Set(list));
      ids.catch(() => undefined); // surfaced when awaited
      run.pendingLetters.set(resourceType, ids);
    }
    return ids;
  }

  /** Patients OpenEMR holds (read in this run): their Observations need no lookup. */
  notePresent(run: RunContext, ids: readonly string[]): void {
    run.presentPatients ??= new Set();
    for (const id of ids) run.presentPatients.add(id);
  }

  /**
   * A batch read from a window (an incremental run's type, a work item's Observations): counted, and
   * mapped into the sink with what it points at checked (mapDependentsInto). `blocked`: the Patients
   * that failed or are dead-lettered.
   */
  async takeBatch(run: RunContext, sink: BatchSink, batch: readonly SyncedResource[], blocked: ReadonlySet<string>): Promise<void> {
    run.tally.read += batch.length;
    await this.mapDependentsInto(batch, run, sink, blocked);
  }

  /**
   * Maps resources that point at other carried resources (a subject Patient, an Encounter) into a
   * sink. One whose target is blocked (failed or dead-lettered) or absent from OpenEMR is held back
   * and dead-lettered saying why: never written with a reference that points at nothing. Targets
   * not met in this run are looked up in OpenEMR, up to a hundred per request (`_id=a,b,...`).
   * `blocked` are Patient ids held back besides those that failed in this run (dead-lettered ones).
   */
  async mapDependentsInto(
    resources: readonly SyncedResource[],
    run: RunContext,
    sink: BatchSink,
    blocked: ReadonlySet<string>,
  ): Promise<void> {
    const carried = this.resourceTypes;
    const { present: seen, absent: gone } = this.seenSets(run);
    // What is handed here was read from OpenEMR: a later resource pointing at it needs no lookup.
    for (const r of resources) if (r.id) seen(r.resourceType).add(r.id);
    // A Patient that failed in this run holds back what points at it, whoever wrote it (a single
    // item writes its Patient through the sink, ensureReferenced).
    const isBlocked = async (type: string, id: string) =>
      type === 'Patient'
        ? blocked.has(id) || run.tally.failedPatients.has(id)
        : run.tally.failedOf(type).has(id) || (await this.blockedEarlier(run, type)).has(id);
    const targets = resources.map((r) =>
      carriedReferences(r.resourceType, carried).flatMap((ref) => referenceTargets(r, ref.element, ref.type).map((id) => ({ ...ref, id }))),
    );
    const unknown = new Map<string, Set<string>>();
    for (const list of targets)
      for (const t of list)
        if (!(await isBlocked(t.type, t.id)) && !seen(t.type).has(t.id) && !gone(t.type).has(t.id)) mapSet(unknown, t.type).add(t.id);
    for (const [type, ids] of unknown) {
      const present = await this.deps.reader.present(type, [...ids]);
      for (const id of ids) (present.has(id) ? seen(type) : gone(type)).add(id);
    }
    const held: FailureItem[] = [];
    for (let i = 0; i < resources.length; i++) {
      const r = resources[i]!;
      let reason: FailureItem | undefined;
      for (const t of targets[i]!) {
        if (await isBlocked(t.type, t.id))
          reason = {
            resourceType: r.resourceType,
            id: r.id ?? '',
            stage: 'write',
            reason: `Not written because its ${t.type}/${t.id} could not be written.`,
          };
        else if (gone(t.type).has(t.id))
          reason = {
            resourceType: r.resourceType,
            id: r.id ?? '',
            stage: 'read',
            reason: `Not written because OpenEMR has no ${t.type}/${t.id} (the ${r.resourceType}'s ${t.element}).`,
          };
        if (reason) break;
      }
      if (reason) held.push(reason);
      else await this.mapInto(r, run, sink);
    }
    await this.fail(run, held);
  }

  /** The ids of a type OpenEMR was seen to hold in this run, and those it does not hold. */
  private seenSets(run: RunContext): { present: (type: string) => Set<string>; absent: (type: string) => Set<string> } {
    run.presentPatients ??= new Set();
    run.absentPatients ??= new Set();
    const present = (run.present ??= new Map());
    const absent = (run.absent ??= new Map());
    return {
      present: (type) => (type === 'Patient' ? run.presentPatients! : mapSet(present, type)),
      absent: (type) => (type === 'Patient' ? run.absentPatients! : mapSet(absent, type)),
    };
  }

  /** Ids of a referenced type dead-lettered before this run (loaded once per run and type). */
  blockedEarlier(run: RunContext, type: string): Promise<Set<string>> {
    run.blockedEarlier ??= new Map();
    let ids = run.blockedEarlier.get(type);
    if (!ids) {
      // Storage down: the run goes on with what it knows (this run's own failures still hold back
      // what points at them), as the Patient path does; writes must not stop because letters can't be read.
      ids = this.deps.deadLetters.list({ resourceType: type }).then(
        (letters) => new Set(letters.map((d) => d.id)),
        () => new Set<string>(),
      );
      run.blockedEarlier.set(type, ids);
    }
    return ids;
  }

  /**
   * Syncs one resource of a patient-scoped type (a replay, a single item): what it points at
   * (its Patient, its Encounter) is read and written first, unchanged if current, so it never
   * points at something the target does not hold; when one of those fails, it is held back saying why.
   */
  async syncResource(type: string, id: string, trigger: Trigger = 'http', runId?: string): Promise<SyncSummary> {
    const run = this.begin(`sync${type}`, trigger, runId);
    const resource = await this.deps.reader.getResource(type, id);
    run.tally.read++;
    return this.writeWithReferences(run, resource);
  }

  /** One resource after what it points at (ensureReferenced); the summary says which target held it back. */
  private async writeWithReferences(run: RunContext, resource: SyncedResource): Promise<SyncSummary> {
    const sink = this.sink(run);
    await this.ensureReferenced(run, sink, [resource]);
    await this.mapDependentsInto([resource], run, sink, new Set());
    await sink.flush();
    const failedTarget = carriedReferences(resource.resourceType, this.resourceTypes)
      .flatMap((r) => referenceTargets(resource, r.element, r.type).map((id) => ({ type: r.type, id })))
      .find((t) => run.tally.failedOf(t.type).has(t.id));
    return this.finish(
      run,
      failedTarget ? `${failedTarget.type}/${failedTarget.id} could not be written, so its ${resource.resourceType} was not.` : undefined,
    );
  }

  /**
   * Writes what these resources point at and this run has not met (an Observation's Patient and
   * Encounter, the Encounter's Practitioner and Location, the Location's Organization), read by id
   * from OpenEMR, rank by rank and what that points at first: a single-item sync never writes a
   * resource whose target the target server may lack. Ids OpenEMR does not answer are noted absent
   * (their dependants are then held back saying so).
   */
  async ensureReferenced(run: RunContext, sink: BatchSink, resources: readonly SyncedResource[]): Promise<void> {
    const groups = rankGroups(this.resourceTypes);
    const seen = this.seenSets(run);
    // What they point at, what that points at, …: each id read once (noted before the next step, so
    // a Location's Organization fetched beside it as an Encounter's serviceProvider is not read again).
    const fetched: SyncedResource[] = [];
    let frontier = resources;
    // References point at lower ranks only: more steps than there are ranks is a loop in the data.
    for (let step = 0; frontier.length > 0 && step < groups.length; step++) {
      const wanted = new Map<string, Set<string>>();
      for (const r of frontier)
        for (const ref of carriedReferences(r.resourceType, this.resourceTypes))
          for (const id of referenceTargets(r, ref.element, ref.type))
            if (!seen.present(ref.type).has(id) && !seen.absent(ref.type).has(id)) mapSet(wanted, ref.type).add(id);
      const found: SyncedResource[] = [];
      for (const [type, ids] of wanted) {
        const ofType = await this.deps.reader.byIds(type, [...ids]);
        run.tally.read += ofType.length;
        const foundIds = new Set(ofType.flatMap((r) => (r.id ? [r.id] : [])));
        for (const id of ids) (foundIds.has(id) ? seen.present(type) : seen.absent(type)).add(id);
        found.push(...ofType);
      }
      fetched.push(...found);
      frontier = found;
    }
    // Written rank by rank, each rank flushed before the next is mapped: what they point at first.
    for (const group of groups) {
      const ofGroup = fetched.filter((r) => group.includes(r.resourceType));
      if (ofGroup.length === 0) continue;
      for (const type of group)
        await this.mapDependentsInto(
          ofGroup.filter((r) => r.resourceType === type),
          run,
          sink,
          new Set(),
        );
      await sink.flush();
    }
  }

  /** Deletes in the target a resource the source reports deleted (export deleted[]). */
  async deleteFromTarget(run: RunContext, resourceType: string, sourceId: string): Promise<void> {
    const id = this.deps.mapper.targetId(resourceType, sourceId);
    await this.deps.writer.delete(resourceType, id);
    run.audit?.noteDeleted(resourceType, [id]);
    run.tally.deleted++;
  }

  /** Tallies and dead-letters failures found outside a write (e.g. Observations blocked by their Patient). */
  async recordFailures(run: RunContext, items: FailureItem[]): Promise<void> {
    await this.fail(run, items);
  }

  private map(resource: SyncedResource, run: RunContext): MapOutcome {
    const outcome = this.deps.mapper.map(resource);
    if (outcome.ok) {
      run.tally.unmapped.add(outcome.unmapped);
      run.audit?.noteSource(outcome.resource, resource);
    }
    return outcome;
  }

  /** Tallies write results (carrying source ids) and dead-letters the failures. */
  private async recordWrites(run: RunContext, results: readonly WriteResult[]): Promise<void> {
    run.tally.addWrites(results);
    const failed = results.filter((r) => r.outcome === 'failed');
    if (failed.length > 0) {
      await this.deadLetter(
        run,
        failed.map((r) => ({
          resourceType: r.resourceType,
          id: r.id,
          stage: 'write' as const,
          status: r.status,
          reason: r.reason ?? 'write failed',
          attempts: r.attempts,
        })),
      );
    }
    await this.clearRecovered(
      run,
      results.filter((r) => r.outcome !== 'failed'),
    );
  }

  /**
   * A resource written now has no failure left to tell: its dead letter goes, so it stops counting
   * as pending, and a Patient that failed before stops holding back its Observations. Single-item
   * calls look their few keys up; bigger runs load the pending keys once.
   */
  private async clearRecovered(run: RunContext, written: readonly WriteResult[]): Promise<void> {
    if (written.length === 0) return;
    try {
      const recovered: WriteResult[] = [];
      for (const [resourceType, ofType] of byResourceType(written)) {
        if (run.pendingLetters?.has(resourceType) || ofType.length > POINT_READS) {
          const pending = await this.pendingIds(run, resourceType);
          recovered.push(...ofType.filter((r) => pending.delete(r.id)));
        } else {
          const found = await Promise.all(ofType.map((r) => this.deps.deadLetters.get(r.resourceType, r.id)));
          recovered.push(...ofType.filter((_, i) => found[i]));
        }
      }
      if (recovered.length > 0) await this.deps.deadLetters.remove(recovered.map((r) => ({ resourceType: r.resourceType, id: r.id })));
    } catch {
      // Storage trouble must not fail a write that succeeded: the letter stays, and a replay of it
      // finds the resource written and removes it.
    }
  }

  private async fail(run: RunContext, items: FailureItem[]): Promise<void> {
    if (items.length === 0) return;
    for (const item of items) run.tally.addFailure(item);
    await this.deadLetter(
      run,
      items.map((i) => ({ ...i, attempts: 1 })),
    );
  }

  private async deadLetter(run: RunContext, items: Array<FailureItem & { attempts: number }>): Promise<void> {
    const at = new Date(this.now()).toISOString();
    const letters: DeadLetter[] = items.map((i) => ({ ...i, at, runId: run.runId, operation: run.operation }));
    await this.deps.deadLetters.record(letters);
    // Pending ids are a best-effort view (see clearRecovered): if they could not be loaded, move on.
    for (const [resourceType, ofType] of byResourceType(letters)) {
      const pending = await run.pendingLetters?.get(resourceType)?.catch(() => undefined);
      for (const l of ofType) pending?.add(l.id);
    }
    for (const l of letters) this.deps.telemetry.deadLetter({ resourceType: l.resourceType, id: l.id, status: l.status, reason: l.reason });
  }

  /**
   * Writes the run's AuditEvents (AUDIT_TRAIL on; none when it wrote and deleted nothing) and answers
   * what the trail wrote. Never throws: the data is written whatever becomes of its record.
   */
  async closeAudit(run: RunContext, status: SyncSummary['status']): Promise<AuditCounts | undefined> {
    return run.audit?.close(status, this.now());
  }

  /** lagSeconds: how far the data in the target is behind now, for runs that keep it current. */
  async finish(run: RunContext, message?: string, window?: LastUpdatedWindow, lagSeconds?: number): Promise<SyncSummary> {
    const t = run.tally;
    const failed = t.total('failed');
    const ok = t.total('created') + t.total('updated') + t.total('unchanged');
    const status = failed === 0 ? 'ok' : ok === 0 ? 'failed' : 'partial';
    const audit = await this.closeAudit(run, status);
    const summary: SyncSummary = {
      runId: run.runId,
      operation: run.operation,
      trigger: run.trigger,
      status,
      read: t.read,
      created: t.total('created'),
      updated: t.total('updated'),
      unchanged: t.total('unchanged'),
      failed,
      deadLettered: t.failureCount,
      durationMs: this.now() - run.startedAt,
      byType: t.byType,
      failures: t.failures.slice(0, MAX_LISTED_FAILURES),
      unmapped: t.unmapped.entries().slice(0, 50),
      ...(window ? { window } : {}),
      ...(message ? { message } : {}),
      ...(audit ? { audit } : {}),
    };
    this.deps.telemetry.runCompleted({
      runId: summary.runId,
      trigger: summary.trigger,
      operation: summary.operation,
      windowStart: window?.since,
      windowEnd: window?.until,
      read: summary.read,
      created: summary.created,
      updated: summary.updated,
      unchanged: summary.unchanged,
      failed: summary.failed,
      deadLettered: summary.deadLettered,
      durationMs: summary.durationMs,
      ...(lagSeconds !== undefined ? { lagSeconds } : {}),
      byType: summary.byType,
      unmappedCodes: t.unmapped.size,
    });
    if (t.unmapped.size > 0)
      this.deps.telemetry.unmappedCodes(t.unmapped.entries().map((u) => ({ system: u.system, code: u.code, count: u.count })));
    return summary;
  }
}

/**
 * The Patient id an Observation's subject names, whatever its length (a Patient whose id is too long
 * for FHIR is dead-lettered, and its Observations must be held back with it).
 */
export function subjectPatientId(observation: Observation): string | undefined {
  const m = /(?:^|\/)Patient\/([^/]+?)(?:\/_history\/[^/]+)?\/?$/.exec(observation.subject?.reference ?? '');
  return m?.[1] ?? referencedId(observation.subject?.reference, 'Patient');
}

/**
 * Every id the references at an element path name for `type`: a single Reference, a list of them
 * (DiagnosticReport.result), or one reached by a dotted path through objects and lists
 * (DocumentReference.context.encounter, Encounter.participant.individual); each id once, in document order.
 */
export function referenceTargets(resource: SyncedResource, element: string, type: string): string[] {
  let nodes: unknown[] = [resource];
  for (const step of element.split('.')) {
    nodes = nodes.flatMap((n) => {
      const v = n && typeof n === 'object' ? (n as Record<string, unknown>)[step] : undefined;
      return Array.isArray(v) ? v : v === undefined ? [] : [v];
    });
  }
  const pattern = new RegExp(`(?:^|/)${type}/([^/]+?)(?:/_history/[^/]+)?/?$`);
  const ids: string[] = [];
  for (const node of nodes) {
    const ref = (node as { reference?: unknown } | null)?.reference;
    if (typeof ref !== 'string') continue;
    const id = pattern.exec(ref)?.[1] ?? referencedId(ref, type);
    if (id !== undefined && !ids.includes(id)) ids.push(id);
  }
  return ids;
}

/** The writer's context of a run: its id, and its audit trail's Provenance riding with each bundle. */
function writeContext(run: RunContext): WriteContext {
  return run.audit ? { runId: run.runId, companions: run.audit } : { runId: run.runId };
}

function mapSet(map: Map<string, Set<string>>, key: string): Set<string> {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  return set;
}
