import { randomUUID } from 'node:crypto';
import type { AhdsWriter, WriteResult } from '../ahds/writer';
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

export type Trigger = RunSummary['trigger'];

export interface SyncSettings {
  batchSize: number;
  readConcurrency: number;
  pageSize: number;
}

export interface SyncDeps {
  reader: OpenEmrReader;
  writer: AhdsWriter;
  mapper: ResourceMapper;
  telemetry: Telemetry;
  deadLetters: DeadLetterStore;
  settings: SyncSettings;
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
  onProgress?: (tally: Tally) => void;
}

const MAX_LISTED_FAILURES = 100;

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

  begin(operation: string, trigger: Trigger, runId: string = randomUUID(), onProgress?: (tally: Tally) => void): RunContext {
    return { runId, operation, trigger, startedAt: this.now(), tally: new Tally(), onProgress };
  }

  async syncPatient(id: string, trigger: Trigger = 'http', runId?: string): Promise<SyncSummary> {
    const run = this.begin('syncPatient', trigger, runId);
    const patient = await this.deps.reader.getPatient(id);
    run.tally.read++;
    await this.writeResources([patient], run);
    return this.finish(run);
  }

  /** Syncs the Observation's Patient first (unchanged if already current), then the Observation. */
  async syncObservation(id: string, trigger: Trigger = 'http', runId?: string): Promise<SyncSummary> {
    const run = this.begin('syncObservation', trigger, runId);
    const observation = await this.deps.reader.getObservation(id);
    run.tally.read++;
    const patientId = referencedId(observation.subject?.reference, 'Patient');
    if (!patientId) {
      await this.fail(run, [{ resourceType: 'Observation', id, stage: 'map', reason: 'Observation.subject does not reference a Patient.' }]);
      return this.finish(run);
    }
    const patient = await this.deps.reader.getPatient(patientId);
    run.tally.read++;
    const [patientResult] = await this.writeResources([patient], run);
    if (patientResult?.outcome === 'failed') {
      await this.fail(run, [blockedByPatient(observation, patientId)]);
      return this.finish(run, `Patient/${patientId} could not be written, so its Observation was not.`);
    }
    await this.writeResources([observation], run);
    return this.finish(run);
  }

  async syncPatientWithObservations(id: string, trigger: Trigger = 'http', runId?: string): Promise<SyncSummary> {
    const run = this.begin('syncPatientWithObservations', trigger, runId);
    const [patient, observations] = await Promise.all([this.deps.reader.getPatient(id), this.deps.reader.observationsOfPatient(id)]);
    run.tally.read += 1 + observations.length;
    await this.writePatientThenObservations(run, patient, observations);
    const patientFailed = run.tally.failedPatients.has(id);
    return this.finish(run, patientFailed ? `Patient/${id} could not be written, so its ${observations.length} Observation(s) were not.` : undefined);
  }

  /**
   * Every Patient (optionally those updated in a window) with all their Observations, streamed.
   * Patient pages come in lastUpdated order and a page's Patients are written before any of their
   * Observations. Reads hold one of `readConcurrency` slots only while the request is open, and run
   * a bounded few answers ahead (ReadAhead): the next page is read and its Patients written while
   * this page's Observations stream, so reads overlap mapping and writing instead of alternating.
   */
  async fullSync(options: { trigger: Trigger; window?: LastUpdatedWindow; runId?: string; onProgress?: (tally: Tally) => void }): Promise<SyncSummary> {
    const run = this.begin('fullSync', options.trigger, options.runId, options.onProgress);
    const sink = this.sink(run);
    const { readConcurrency, pageSize } = this.deps.settings;
    const reads = new ReadSlots(readConcurrency);
    const pages = this.deps.reader.patients(pageSize, options.window);
    const readPage = async (): Promise<{ page: Patient[]; failed: Promise<Set<string>> } | undefined> => {
      const step = await reads.run(() => pages.next());
      if (step.done) return undefined;
      const page = step.value;
      run.tally.read += page.length;
      const failed = this.writeResources(page, run).then((results) => new Set(page.filter((_, i) => results[i]?.outcome === 'failed').map((p) => p.id!)));
      failed.catch(() => undefined); // surfaced when awaited
      return { page, failed };
    };
    let next = readPage();
    for (let current = await next; current; current = await next) {
      const { page } = current;
      const observations = new ReadAhead(
        page.map((p) => p.id!),
        (id) => this.deps.reader.observationsOfPatient(id),
        reads,
        readAheadLimits(readConcurrency),
      );
      const failedIds = await current.failed;
      next = readPage();
      next.catch(() => undefined);
      for (const patient of page) {
        const patientId = patient.id!;
        const ofPatient = await observations.next();
        run.tally.read += ofPatient.length;
        if (failedIds.has(patientId)) {
          await this.fail(run, ofPatient.map((o) => blockedByPatient(o, patientId)));
          continue;
        }
        for (const o of ofPatient) await this.mapInto(o, run, sink);
      }
      run.onProgress?.(run.tally);
    }
    await sink.flush();
    return this.finish(run, undefined, options.window);
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
    await this.fail(run, failures);
    const written = (await this.deps.writer.writeAll(mapped, { runId: run.runId })).map((r, j) => ({ ...r, id: resources[positions[j]!]!.id ?? r.id }));
    await this.recordWrites(run, written);
    // A resource that failed mapping answers 'failed' too: its dependants must not be written.
    const answer: WriteResult[] = resources.map((r) => ({ resourceType: r.resourceType, id: r.id ?? '', outcome: 'failed', attempts: 0 }));
    positions.forEach((pos, j) => (answer[pos] = written[j]));
    return answer;
  }

  /** A sink whose results are tallied and dead-lettered under the run. */
  sink(run: RunContext): BatchSink {
    return new BatchSink(this.deps.writer, this.deps.settings.batchSize, async (results) => {
      await this.recordWrites(run, results);
      run.onProgress?.(run.tally);
    }, { runId: run.runId });
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

  /** Maps Observations into a sink; those of a blocked Patient are dead-lettered saying why, in one call. */
  async mapObservationsInto(observations: readonly Observation[], run: RunContext, sink: BatchSink, blocked: ReadonlySet<string>): Promise<void> {
    const held: FailureItem[] = [];
    for (const o of observations) {
      const patientId = referencedId(o.subject?.reference, 'Patient');
      if (patientId && blocked.has(patientId)) held.push(blockedByPatient(o, patientId));
      else await this.mapInto(o, run, sink);
    }
    await this.fail(run, held);
  }

  /** Tallies and dead-letters failures found outside a write (e.g. Observations blocked by their Patient). */
  async recordFailures(run: RunContext, items: FailureItem[]): Promise<void> {
    await this.fail(run, items);
  }

  private map(resource: SyncedResource, run: RunContext): MapOutcome {
    const outcome = this.deps.mapper.map(resource);
    if (outcome.ok) run.tally.unmapped.add(outcome.unmapped);
    return outcome;
  }

  private async writePatientThenObservations(run: RunContext, patient: Patient, observations: Observation[]): Promise<void> {
    const [result] = await this.writeResources([patient], run);
    if (result?.outcome === 'failed') {
      await this.fail(run, observations.map((o) => blockedByPatient(o, patient.id!)));
      return;
    }
    const sink = this.sink(run);
    for (const o of observations) await this.mapInto(o, run, sink);
    await sink.flush();
  }

  /** Tallies write results (carrying source ids) and dead-letters the failures. */
  private async recordWrites(run: RunContext, results: readonly WriteResult[]): Promise<void> {
    run.tally.addWrites(results);
    const failed = results.filter((r) => r.outcome === 'failed');
    if (failed.length > 0) {
      await this.deadLetter(
        run,
        failed.map((r) => ({ resourceType: r.resourceType, id: r.id, stage: 'write' as const, status: r.status, reason: r.reason ?? 'write failed', attempts: r.attempts })),
      );
    }
    await this.clearRecovered(run, results.filter((r) => r.outcome !== 'failed'));
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
    await this.deadLetter(run, items.map((i) => ({ ...i, attempts: 1 })));
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

  /** lagSeconds: how far the data in the target is behind now, for runs that keep it current. */
  finish(run: RunContext, message?: string, window?: LastUpdatedWindow, lagSeconds?: number): SyncSummary {
    const t = run.tally;
    const failed = t.total('failed');
    const ok = t.total('created') + t.total('updated') + t.total('unchanged');
    const summary: SyncSummary = {
      runId: run.runId,
      operation: run.operation,
      trigger: run.trigger,
      status: failed === 0 ? 'ok' : ok === 0 ? 'failed' : 'partial',
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
    if (t.unmapped.size > 0) this.deps.telemetry.unmappedCodes(t.unmapped.entries().map((u) => ({ system: u.system, code: u.code, count: u.count })));
    return summary;
  }
}

function blockedByPatient(observation: Observation, patientId: string): FailureItem {
  return {
    resourceType: 'Observation',
    id: observation.id ?? '',
    stage: 'write',
    reason: `Not written because its Patient/${patientId} could not be written.`,
  };
}
