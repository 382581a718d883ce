import { randomUUID } from 'node:crypto';
import { UpstreamError } from '../http/errors';
import type { ResourceKey } from '../fhir/types';
import type { DeadLetter } from './dead-letters';
import { RESOURCE_TYPES } from './resource-types';
import { processWorkItem, WORK_ITEM_TYPE, workItemFromId, type WorkDeps } from './work-queue';

export interface ReplayItem {
  resourceType: string;
  id: string;
  outcome: 'replayed' | 'still-failing' | 'deleted-at-source' | 'not-found';
  status?: number;
  reason?: string;
}

export interface ReplaySummary {
  runId: string;
  attempted: number;
  replayed: number;
  stillFailing: number;
  deletedAtSource: number;
  items: ReplayItem[];
}

/** The one line a replay logs or prints (counts only). */
export function replayLine(s: ReplaySummary): string {
  return `Replay: attempted ${s.attempted}, replayed ${s.replayed}, still failing ${s.stillFailing}, deleted at source ${s.deletedAtSource}.`;
}

/** Reference order (resource-types.ts): what is pointed at is replayed first; work items last. */
const ORDER: Record<string, number> = { ...Object.fromEntries(RESOURCE_TYPES.map((t) => [t.type, t.rank])), [WORK_ITEM_TYPE]: 9 };
const MAX_LISTED = 200;
/** Types a Patient's replay writes along with it (read per Patient). */
const PATIENT_SCOPED = new Set(RESOURCE_TYPES.filter((t) => t.read.patientScoped).map((t) => t.type));

/**
 * Replays dead letters by reading the source again: a Patient with all its Observations, an
 * Observation after its Patient, a work item by running it again. A record is removed when its
 * replay succeeds, and also when the source no longer has the resource (404: "deleted at source").
 * An outage stops the replay and throws; what was replayed so far stays replayed.
 */
export async function replayDeadLetters(
  deps: WorkDeps,
  options: { resourceType?: string; key?: ResourceKey; limit?: number; runId?: string } = {},
): Promise<ReplaySummary> {
  const runId = options.runId ?? randomUUID();
  let letters: DeadLetter[];
  if (options.key) {
    const letter = await deps.deadLetters.get(options.key.resourceType, options.key.id);
    letters = letter ? [letter] : [];
  } else {
    letters = await deps.deadLetters.list({ resourceType: options.resourceType, limit: options.limit ?? 1000 });
  }
  letters.sort((a, b) => (ORDER[a.resourceType] ?? 10) - (ORDER[b.resourceType] ?? 10));
  const summary: ReplaySummary = { runId, attempted: 0, replayed: 0, stillFailing: 0, deletedAtSource: 0, items: [] };
  const note = (item: ReplayItem) => {
    if (summary.items.length < MAX_LISTED) summary.items.push(item);
  };
  if (options.key && letters.length === 0) {
    note({ ...options.key, outcome: 'not-found', reason: 'No dead letter with this type and id.' });
    return summary;
  }
  let patientsReplayed = 0;
  for (const letter of letters) {
    summary.attempted++;
    const key = { resourceType: letter.resourceType, id: letter.id };
    // A Patient's replay writes its resources of every carried type too, which clears their letters:
    // one point read here saves reading and writing each of them (and its Patient) a second time.
    if (patientsReplayed > 0 && PATIENT_SCOPED.has(letter.resourceType) && !(await deps.deadLetters.get(letter.resourceType, letter.id))) {
      summary.replayed++;
      note({ ...key, outcome: 'replayed' });
      continue;
    }
    try {
      const failure = await replayOne(deps, letter, runId);
      if (!failure) {
        await deps.deadLetters.remove([key]);
        summary.replayed++;
        if (letter.resourceType === 'Patient') patientsReplayed++;
        note({ ...key, outcome: 'replayed' });
      } else {
        summary.stillFailing++;
        note({ ...key, outcome: 'still-failing', ...failure });
      }
    } catch (error) {
      // Only OpenEMR saying it has no such resource, about this very resource, retires the letter.
      if (error instanceof UpstreamError && error.missing === `${letter.resourceType}/${letter.id}`) {
        await deps.deadLetters.remove([key]);
        summary.deletedAtSource++;
        note({ ...key, outcome: 'deleted-at-source', status: 404, reason: 'deleted at source' });
        continue;
      }
      if (error instanceof UpstreamError && !error.isOutage) {
        summary.stillFailing++;
        note({ ...key, outcome: 'still-failing', status: error.statusCode, reason: error.message });
        continue;
      }
      throw error;
    }
  }
  return summary;
}

/** Undefined when the resource made it; else why not (status and reason, no content). */
async function replayOne(deps: WorkDeps, letter: DeadLetter, runId: string): Promise<{ status?: number; reason: string } | undefined> {
  if (letter.resourceType === 'Patient') {
    const s = await deps.sync.syncPatientWithObservations(letter.id, 'replay', runId);
    const own = s.failures.find((f) => f.resourceType === 'Patient' && f.id === letter.id);
    return own ? { status: own.status, reason: own.reason } : undefined;
  }
  if (letter.resourceType === 'Observation') {
    const s = await deps.sync.syncObservation(letter.id, 'replay', runId);
    const own = s.failures.find((f) => f.id === letter.id) ?? s.failures[0];
    return s.failed > 0 ? { status: own?.status, reason: own?.reason ?? 'failed' } : undefined;
  }
  if (letter.resourceType === WORK_ITEM_TYPE) {
    const item = workItemFromId(letter.id);
    if (!item)
      return { reason: 'Not a replayable work item (the queue message was not a work item); remove it after checking the sender.' };
    await processWorkItem(deps, item, runId, 'replay');
    return undefined;
  }
  if (deps.sync.resourceTypes.includes(letter.resourceType)) {
    const s = await deps.sync.syncResource(letter.resourceType, letter.id, 'replay', runId);
    const own = s.failures.find((f) => f.resourceType === letter.resourceType && f.id === letter.id) ?? s.failures[0];
    return s.failed > 0 ? { status: own?.status, reason: own?.reason ?? 'failed' } : undefined;
  }
  return { reason: `The connector does not sync ${letter.resourceType}.` };
}
