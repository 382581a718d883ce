import { createHash, randomUUID } from 'node:crypto';
import type { QueueClient } from '@azure/storage-queue';
import { z } from 'zod';
import type { Observation } from '../fhir/types';
import { UpstreamError } from '../http/errors';
import type { OpenEmrReader } from '../openemr/reader';
import type { DeadLetterStore } from './dead-letters';
import { addRunCounts, type UnmappedCodeStore } from '../state/unmapped-codes';
import type { SyncService, SyncSummary, Trigger } from './sync-service';

/**
 * Work items of a scale-out backfill, one per Storage queue message (base64 JSON, as the Functions
 * host expects): a lastUpdated window of Patients (read in keyset pages) or of Observations (which
 * splits itself when its answer is large).
 */
export type WorkItem = { kind: 'patients'; since: string; until: string } | { kind: 'observations'; since: string; until: string };

const isoInstant = z.string().refine((v) => !Number.isNaN(Date.parse(v)), 'must be an ISO date-time');

export const workItemSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('patients'), since: isoInstant, until: isoInstant }).strict(),
  z.object({ kind: z.literal('observations'), since: isoInstant, until: isoInstant }).strict(),
]);

/** The type name under which failed work items are dead-lettered. */
export const WORK_ITEM_TYPE = 'WorkItem';

/** host.json extensions.queues.maxDequeueCount: the delivery after which a message would go to the poison queue. */
export const MAX_DEQUEUE_COUNT = 5;

/** Queue message text: base64 of the JSON (the host's default messageEncoding). */
export function encodeWorkItem(item: WorkItem): string {
  return Buffer.from(JSON.stringify(item), 'utf8').toString('base64');
}

/** A dead-letter id that is the work item itself (base64url JSON: kind and times, no patient data), so a replay can run it again. */
export function workItemId(item: WorkItem): string {
  return Buffer.from(JSON.stringify(item), 'utf8').toString('base64url');
}

export function workItemFromId(id: string): WorkItem | undefined {
  try {
    const parsed = workItemSchema.safeParse(JSON.parse(Buffer.from(id, 'base64url').toString('utf8')));
    return parsed.success ? (parsed.data as WorkItem) : undefined;
  } catch {
    return undefined;
  }
}

/** Reads a queue message as the host hands it over (object, JSON text or base64 JSON text). */
export function parseWorkItem(message: unknown): WorkItem | undefined {
  let value = message;
  if (typeof value === 'string') {
    const text = value.trim();
    const candidates = [text, Buffer.from(text, 'base64').toString('utf8')];
    value = undefined;
    for (const c of candidates) {
      try {
        value = JSON.parse(c);
        break;
      } catch {
        // next
      }
    }
  }
  const parsed = workItemSchema.safeParse(value);
  return parsed.success ? (parsed.data as WorkItem) : undefined;
}

export async function enqueueWorkItems(queue: QueueClient, items: readonly WorkItem[]): Promise<number> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await queue.sendMessage(encodeWorkItem(items[next++]!));
  };
  await Promise.all(Array.from({ length: Math.min(8, items.length) }, worker));
  return items.length;
}

export interface WorkDeps {
  sync: SyncService;
  reader: OpenEmrReader;
  deadLetters: DeadLetterStore;
  /** Patients per page when reading a Patient window (OPENEMR_PAGE_SIZE). */
  pageSize: number;
  /** Where the unmapped-code counts of each work item add up (absent without storage). */
  unmapped?: UnmappedCodeStore;
  /** Where a work item reports what it could not store (the invocation's log). */
  log?: (message: string) => void;
}

/** The work deps of a connector: its SyncService, reader, dead-letter store and page size. */
export function workDepsOf(connector: {
  sync: SyncService;
  reader: OpenEmrReader;
  deadLetters: DeadLetterStore;
  config: { openemr: { pageSize: number } };
  state?: { unmapped: UnmappedCodeStore };
}): WorkDeps {
  return {
    sync: connector.sync,
    reader: connector.reader,
    deadLetters: connector.deadLetters,
    pageSize: connector.config.openemr.pageSize,
    unmapped: connector.state?.unmapped,
  };
}

/**
 * Does one work item. Resource failures are dead-lettered as usual; an outage throws (the queue
 * retries). A Patient item reads its window's Patients and each one's Observations. An Observation
 * item (planned by earlier versions) is read the only way OpenEMR can: `_lastUpdated=ge<since>`,
 * with the upper bound applied here.
 */
export async function processWorkItem(
  deps: WorkDeps,
  item: WorkItem,
  runId: string = randomUUID(),
  trigger: Trigger = 'queue',
): Promise<SyncSummary> {
  await deps.reader.supportedRelease();
  const window = { since: item.since, until: item.until };
  if (item.kind === 'patients') {
    return deps.sync.fullSync({
      trigger,
      window,
      runId,
      operation: `workItem:${item.kind}`,
      beforeFinish: (tally) => addRunCounts(deps.unmapped, tally.unmapped, deps.log),
    });
  }
  const run = deps.sync.begin(`workItem:${item.kind}`, trigger, runId);
  const sink = deps.sync.sink(run);
  const blocked = await deps.sync.blockedPatients(run);
  const until = Date.parse(item.until);
  try {
    const observations = (await deps.reader.observationsSince(item.since)).filter(
      (o: Observation) => !(Date.parse(o.meta?.lastUpdated ?? '') >= until),
    );
    await deps.sync.takeBatch(run, sink, observations, blocked);
    await sink.flush();
  } catch (error) {
    await sink.flush().catch(() => undefined);
    throw error;
  }
  await addRunCounts(deps.unmapped, run.tally.unmapped, deps.log);
  return await deps.sync.finish(run, undefined, window);
}

export type QueueOutcome = { outcome: 'done'; summary: SyncSummary } | { outcome: 'dead-lettered'; reason: string };

/**
 * One delivery of a queue message. A failure throws so the host delivers the message again, until
 * delivery MAX_DEQUEUE_COUNT: then (instead of a silent poison queue) the work item is recorded as
 * a dead letter, which lists and replays like any other. A message that is not a work item at all
 * is dead-lettered at once (under a hash of its text, never the text).
 */
export async function handleWorkMessage(
  deps: WorkDeps,
  message: unknown,
  dequeueCount: number,
  runId: string = randomUUID(),
): Promise<QueueOutcome> {
  const item = parseWorkItem(message);
  const at = new Date().toISOString();
  if (!item) {
    const digest = createHash('sha256')
      .update(typeof message === 'string' ? message : JSON.stringify(message ?? null))
      .digest('base64url')
      .slice(0, 32);
    const reason = 'Queue message is not a work item (expected {"kind":"patients",...} or {"kind":"observations",...}).';
    await deps.deadLetters.record([
      {
        resourceType: WORK_ITEM_TYPE,
        id: `invalid-${digest}`,
        stage: 'read',
        reason,
        attempts: dequeueCount,
        at,
        runId,
        operation: 'workItem',
      },
    ]);
    return { outcome: 'dead-lettered', reason };
  }
  try {
    return { outcome: 'done', summary: await processWorkItem(deps, item, runId) };
  } catch (error) {
    if (dequeueCount < MAX_DEQUEUE_COUNT) throw error;
    const status = error instanceof UpstreamError ? error.statusCode : undefined;
    const reason = `Work item failed on delivery ${dequeueCount} of ${MAX_DEQUEUE_COUNT}: ${error instanceof UpstreamError ? error.message : ((error as Error)?.name ?? 'Error')}`;
    await deps.deadLetters.record([
      {
        resourceType: WORK_ITEM_TYPE,
        id: workItemId(item),
        stage: 'read',
        ...(status !== undefined ? { status } : {}),
        reason,
        attempts: dequeueCount,
        at,
        runId,
        operation: `workItem:${item.kind}`,
      },
    ]);
    return { outcome: 'dead-lettered', reason };
  }
}
