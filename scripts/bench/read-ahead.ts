/**
 * A PROPOSAL, measured by `npm run bench -- --read-ahead`: the full sync of src/sync/sync-service.ts
 * with the same contract (Patient pages in lastUpdated order, a page's Patients written before their
 * Observations, at most `readConcurrency` requests at OpenEMR at any time) but with the read slot
 * released as soon as the answer is in, not after its resources are mapped and queued. Reads then
 * overlap mapping and writing instead of alternating with them. Built on SyncService's public
 * methods only; not used by the connector itself.
 */
import type { Connector } from '../../src/connector';
import type { SyncSummary, Trigger } from '../../src/sync/sync-service';
import type { LastUpdatedWindow } from '../../src/openemr/reader';
import type { Observation, Patient } from '../../src/fhir/types';

/** At most `size` tasks at once; FIFO. */
class Slots {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly size: number) {}
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.size) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

export async function fullSyncReadAhead(connector: Connector, options: { trigger: Trigger; window?: LastUpdatedWindow }): Promise<SyncSummary> {
  const { sync, reader } = connector;
  const { readConcurrency, pageSize } = connector.config.openemr;
  const reads = new Slots(readConcurrency);
  // Fetched but not yet consumed: bounded, so memory stays a few patients' worth of Observations.
  const lookahead = readConcurrency + 1;
  const run = sync.begin('fullSync', options.trigger);
  const sink = sync.sink(run);
  const pages = reader.patients(pageSize, options.window);
  // The next page is read, and its Patients written, while this page's Observations stream: the
  // Patient bundle no longer stalls the stream at every page boundary.
  const readPage = async (): Promise<{ page: Patient[]; written: Promise<Set<string>> } | undefined> => {
    const step = await reads.run(() => pages.next());
    if (step.done) return undefined;
    const page: Patient[] = step.value;
    run.tally.read += page.length;
    const written = sync.writeResources(page, run).then((results) => new Set(page.filter((_, i) => results[i]?.outcome === 'failed').map((p) => p.id!)));
    written.catch(() => undefined);
    return { page, written };
  };
  let next = readPage();
  for (;;) {
    const current = await next;
    if (!current) break;
    const { page } = current;
    const fetches: Array<Promise<Observation[]>> = [];
    const startUpTo = (n: number): void => {
      while (fetches.length < Math.min(n, page.length)) {
        const id = page[fetches.length]!.id!;
        const p = reads.run(() => reader.observationsOfPatient(id));
        p.catch(() => undefined); // surfaced when awaited below
        fetches.push(p);
      }
    };
    // Reads of this page's Observations start while its Patients are being written.
    startUpTo(lookahead);
    const failedIds = await current.written;
    next = readPage();
    next.catch(() => undefined);
    for (let i = 0; i < page.length; i++) {
      startUpTo(i + 1 + lookahead);
      const observations = await fetches[i]!;
      fetches[i] = Promise.resolve([]); // let the answer go
      const patientId = page[i]!.id!;
      run.tally.read += observations.length;
      if (failedIds.has(patientId)) {
        await sync.recordFailures(
          run,
          observations.map((o) => ({ resourceType: 'Observation', id: o.id ?? '', stage: 'write' as const, reason: `Not written because its Patient/${patientId} could not be written.` })),
        );
        continue;
      }
      for (const o of observations) await sync.mapInto(o, run, sink);
    }
    run.onProgress?.(run.tally);
  }
  await sink.flush();
  return sync.finish(run, undefined, options.window);
}
