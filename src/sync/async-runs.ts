import { randomUUID } from 'node:crypto';
import type { QueueClient } from '@azure/storage-queue';
import { z } from 'zod';
import type { Connector } from '../connector';
import { parseInstant } from '../config/instant';
import { failureClassOf, runFailureMessage } from '../state/errors';
import type { RunKind, RunProgressView, RunState, RunStatus, RunStatusStore } from '../state/run-status';
import { incrementalSync, openEmrNow, requireState, type LeasedOutcome } from './incremental';
import { floorSecond, iso } from './incremental-windows';
import { planBackfill } from './planner';
import { runReconcile } from './reconcile';
import { replayDeadLetters } from './replay';
import { reportUnfinishedRun } from './run-report';
import type { Tally } from './tally';
import { workDepsOf, type QueueOutcome, type WorkItem } from './work-queue';

/**
 * Long runs requested over HTTP (a full or `since` sync, reconciliation, replay of every dead
 * letter, a backfill) are not run in the request: the Functions front end cuts an HTTP answer at
 * 230 s. The request is recorded in the run status table, put on the work queue as a run message,
 * and answered 202 with the run id; the queue-triggered worker runs it and keeps the status row
 * current (progress while it runs, counts and the final summary after). A backfill's run message
 * plans the backfill and enqueues its work items tagged with the run id; each worker records its
 * item, and the status adds them up.
 */
const instant = z.string().refine((v) => parseInstant(v) !== undefined, 'must be an ISO 8601 instant');

export const runMessageSchema = z.discriminatedUnion('operation', [
  z
    .object({
      kind: z.literal('run'),
      runId: z.string().min(1).max(100),
      operation: z.literal('sync'),
      full: z.boolean().optional(),
      since: instant.optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('run'),
      runId: z.string().min(1).max(100),
      operation: z.literal('reconcile'),
      deleteMode: z.literal('report-only').optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('run'),
      runId: z.string().min(1).max(100),
      operation: z.literal('replay'),
      resourceType: z.string().optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('run'),
      runId: z.string().min(1).max(100),
      operation: z.literal('backfill'),
      since: instant.optional(),
      until: instant.optional(),
      windowSeconds: z.number().int().positive().optional(),
    })
    .strict(),
]);

export type RunMessage = z.infer<typeof runMessageSchema>;
export type RunRequestBody = RunMessage extends infer M ? (M extends RunMessage ? Omit<M, 'kind' | 'runId'> : never) : never;

/** A backfill work item as enqueued by a run: the item, plus the run it belongs to and its index. */
export interface TaggedWorkItem {
  item: WorkItem;
  run?: { id: string; n: number };
}

/** Decodes a queue message as the host hands it over (an object, JSON text or base64 JSON text). */
export function decodeQueueMessage(message: unknown): unknown {
  if (typeof message !== 'string') return message;
  const text = message.trim();
  for (const candidate of [text, Buffer.from(text, 'base64').toString('utf8')]) {
    try {
      return JSON.parse(candidate);
    } catch {
      // next
    }
  }
  return message;
}

/** A run message, or undefined when the message is something else (a work item). */
export function parseRunMessage(message: unknown): RunMessage | undefined {
  const value = decodeQueueMessage(message);
  if (!value || typeof value !== 'object' || (value as { kind?: unknown }).kind !== 'run') return undefined;
  const parsed = runMessageSchema.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

/** Splits the run tag off a work item message, leaving the item as the work queue expects it. */
export function untagWorkItem(message: unknown): TaggedWorkItem | { item: unknown; run?: undefined } {
  const value = decodeQueueMessage(message);
  if (!value || typeof value !== 'object' || Array.isArray(value)) return { item: message };
  const { run, ...item } = value as { run?: unknown };
  const tag = z
    .object({ id: z.string().min(1).max(100), n: z.number().int().nonnegative() })
    .strict()
    .safeParse(run);
  return tag.success ? { item: item as WorkItem, run: tag.data } : { item: run === undefined ? value : message };
}

const KIND_OF: Record<RunMessage['operation'], RunKind> = { sync: 'sync', reconcile: 'reconcile', replay: 'replay', backfill: 'backfill' };

/** Records the run as queued and puts its message on the queue; answers the run's status row. */
export async function requestRun(
  deps: { runs: RunStatusStore; queue: QueueClient },
  body: RunRequestBody,
  runId: string = randomUUID(),
): Promise<RunStatus> {
  const message = { kind: 'run', runId, ...body } as RunMessage;
  const { kind: _k, runId: _r, operation, ...request } = message as RunMessage & Record<string, unknown>;
  const status: RunStatus = {
    runId,
    kind: KIND_OF[operation],
    state: 'queued',
    request: request as RunStatus['request'],
    requestedAt: new Date().toISOString(),
  };
  await deps.runs.create(status);
  await deps.queue.sendMessage(Buffer.from(JSON.stringify(message), 'utf8').toString('base64'));
  return status;
}

/** Progress written at most this often while a run works (one table write each). */
const PROGRESS_EVERY_MS = 2000;

/** Writes progress to the status row, throttled and in order; `settle` waits for the last write. */
function progressWriter(runs: RunStatusStore, runId: string, now: () => number = Date.now) {
  let last = 0;
  let chain: Promise<void> = Promise.resolve();
  return {
    write(view: Omit<RunProgressView, 'updatedAt'>, force = false): void {
      if (!force && now() - last < PROGRESS_EVERY_MS) return;
      last = now();
      const progress = { ...view, updatedAt: new Date(last).toISOString() };
      chain = chain.then(() => runs.update(runId, { progress }).catch(() => undefined));
    },
    settle: () => chain,
  };
}

function viewOf(tally: Tally, phase?: string, fraction?: number): Omit<RunProgressView, 'updatedAt'> {
  const written = tally.total('created') + tally.total('updated') + tally.total('unchanged');
  return {
    ...(phase ? { phase } : {}),
    read: tally.read,
    written,
    failed: tally.total('failed'),
    ...(fraction !== undefined ? { fraction } : {}),
  };
}

const FINAL_OF: Record<'ok' | 'partial' | 'failed', RunState> = { ok: 'succeeded', partial: 'partial', failed: 'failed' };

/**
 * Runs one run message to its end and records the outcome in the status row. A failure is
 * recorded (with its class and a one-line reason) and its run event emitted; it is not thrown,
 * so the queue does not run a full sync five times: the caller reads "failed" and asks again.
 */
export async function executeRun(
  connector: Connector,
  message: RunMessage,
  log: (line: string) => void = () => undefined,
): Promise<RunStatus | undefined> {
  const state = requireState(connector);
  const { runs } = state;
  const startedAt = Date.now();
  const existing = await runs.get(message.runId);
  if (existing && existing.state !== 'queued' && existing.state !== 'running') return existing; // a redelivery of a finished run
  await runs.update(message.runId, { state: 'running', startedAt: new Date(startedAt).toISOString() });
  const progress = progressWriter(runs, message.runId);
  const finish = async (patch: Partial<RunStatus>) => {
    await progress.settle();
    await runs.update(message.runId, { finishedAt: new Date().toISOString(), ...patch });
  };
  const leased = async <T extends { status: 'ok' | 'partial' | 'failed' }>(outcome: LeasedOutcome<T>) => {
    if (outcome.skipped) {
      await reportUnfinishedRun(
        { telemetry: connector.telemetry, watermarks: state.watermarks, types: connector.config.sync.resourceTypes },
        { runId: message.runId, trigger: 'http', operation: message.operation, status: 'skipped', startedAt },
      );
      return finish({ state: 'skipped', error: { failureClass: 'lease-held', message: outcome.skip.message } });
    }
    return finish({ state: FINAL_OF[outcome.value.status], result: outcome.value });
  };
  try {
    switch (message.operation) {
      case 'sync': {
        const outcome = await incrementalSync(connector, {}, log).run({
          trigger: 'http',
          full: message.full,
          since: message.since,
          runId: message.runId,
          onProgress: (p) => progress.write(viewOf(p.tally, p.phase, p.fraction)),
        });
        await leased(outcome);
        break;
      }
      case 'reconcile': {
        const outcome = await runReconcile(connector, {
          trigger: 'http',
          runId: message.runId,
          ...(message.deleteMode ? { deleteMode: message.deleteMode } : {}),
          onProgress: (t) => progress.write(viewOf(t, 'reconcile')),
          log,
        });
        await leased(outcome);
        break;
      }
      case 'replay': {
        const summary = await replayDeadLetters(workDepsOf(connector), { resourceType: message.resourceType, runId: message.runId });
        await finish({ state: summary.stillFailing > 0 ? 'partial' : 'succeeded', result: summary });
        break;
      }
      case 'backfill': {
        const until = message.until ?? iso(floorSecond((await openEmrNow(connector.reader)) - connector.config.sync.lagSeconds * 1000));
        progress.write({ phase: 'planning', read: 0, written: 0, failed: 0 }, true);
        const plan = await planBackfill(connector.reader, {
          since: message.since,
          until,
          pageSize: connector.config.openemr.pageSize,
          windowSeconds: message.windowSeconds,
        });
        const queue = await state.storage.queue(state.queueName);
        const { items, ...counts } = plan;
        await progress.settle();
        // Total first, so a fast worker's item never finds a run that does not expect it.
        await runs.update(message.runId, {
          items: { total: items.length, done: 0, deadLettered: 0, read: 0, written: 0, failed: 0 },
          result: { queue: state.queueName, since: message.since, until, ...counts },
          progress: { phase: 'enqueued', read: 0, written: 0, failed: 0, updatedAt: new Date().toISOString() },
        });
        await enqueueTagged(queue, items, message.runId);
        log(
          `Backfill ${message.runId} planned: ${plan.patientWindows} Patient window(s), ${plan.observationWindows} Observation window(s), ${plan.probes} probe(s).`,
        );
        break;
      }
    }
  } catch (error) {
    const line = runFailureMessage(error);
    log(`Run ${message.runId} (${message.operation}) failed: ${line}`);
    await reportUnfinishedRun(
      { telemetry: connector.telemetry, watermarks: state.watermarks, types: connector.config.sync.resourceTypes },
      { runId: message.runId, trigger: 'http', operation: message.operation, status: 'failed', error, startedAt },
    );
    await finish({ state: 'failed', error: { failureClass: failureClassOf(error), message: line } });
  }
  return runs.get(message.runId);
}

async function enqueueTagged(queue: QueueClient, items: readonly WorkItem[], runId: string): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const n = next++;
      const tagged = { ...items[n]!, run: { id: runId, n } };
      await queue.sendMessage(Buffer.from(JSON.stringify(tagged), 'utf8').toString('base64'));
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, items.length) }, worker));
}

/** Records a tagged work item's outcome in its run's status (a storage hiccup here only delays the count). */
export async function recordWorkItem(runs: RunStatusStore, tag: { id: string; n: number }, outcome: QueueOutcome): Promise<void> {
  const at = new Date().toISOString();
  if (outcome.outcome === 'dead-lettered') {
    await runs.recordItem(tag.id, tag.n, { outcome: 'dead-lettered', read: 0, written: 0, failed: 0, at });
    return;
  }
  const s = outcome.summary;
  await runs.recordItem(tag.id, tag.n, {
    outcome: 'done',
    read: s.read,
    written: s.created + s.updated + s.unchanged,
    failed: s.failed,
    at,
  });
}
