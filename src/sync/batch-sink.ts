import type { AhdsWriter, WriteContext, WriteResult } from '../ahds/writer';
import { keyString } from '../fhir/types';
import type { SyncedResource } from '../fhir/types';

/**
 * Streams resources into AHDS batch bundles. Memory is bounded by batch size times batches in
 * flight: `add` waits while the writer's adaptive limit is used up, so readers slow down to the
 * pace AHDS absorbs instead of piling resources up. A later version of a resource never shares a
 * bundle with an earlier one, and its bundle is sent only once the earlier one is answered.
 */
export class BatchSink {
  private current: Array<{ resource: SyncedResource; sourceId: string }> = [];
  private keys = new Set<string>();
  private readonly inFlight = new Set<Promise<void>>();
  /** The bundle in flight holding each resource (bounded by the bundles in flight). */
  private readonly inFlightKeys = new Map<string, Promise<void>>();
  private failure?: unknown;

  constructor(
    private readonly writer: Pick<AhdsWriter, 'writeBatch' | 'limiter'>,
    private readonly batchSize: number,
    /** Results carry the SOURCE id, which differs from the written id only when de-identifying. */
    private readonly onResults: (results: WriteResult[]) => void | Promise<void>,
    /** Who writes (the run id goes to the target's audit log). */
    private readonly context: WriteContext = {},
  ) {}

  async add(resource: SyncedResource, sourceId: string = resource.id ?? ''): Promise<void> {
    this.throwIfFailed();
    const key = keyString({ resourceType: resource.resourceType, id: resource.id ?? '' });
    // A second version of a resource may not share a parallel bundle with the first.
    if (this.keys.has(key)) await this.dispatch();
    this.current.push({ resource, sourceId });
    this.keys.add(key);
    if (this.current.length >= this.batchSize) await this.dispatch();
  }

  /** Sends what is buffered and waits for every bundle to finish. */
  async flush(): Promise<void> {
    if (this.current.length > 0) await this.dispatch();
    await Promise.all(this.inFlight);
    this.throwIfFailed();
  }

  private async dispatch(): Promise<void> {
    const batch = this.current;
    const keys = this.keys;
    this.current = [];
    this.keys = new Set();
    if (batch.length === 0) return;
    // One more than the limit keeps the pipe full while a bundle is being answered.
    while (this.inFlight.size > this.writer.limiter.limit) await Promise.race(this.inFlight);
    this.throwIfFailed();
    // Earlier versions of these resources still in flight are answered first.
    const earlier = new Set<Promise<void>>();
    for (const key of keys) {
      const pending = this.inFlightKeys.get(key);
      if (pending) earlier.add(pending);
    }
    // writeBatch settles only once no copy of this bundle can still run on the server (see
    // AhdsWriter.writeBatch), so a later version waiting on it can never be overtaken.
    const write = () =>
      this.writer.writeBatch(
        batch.map((b) => b.resource),
        this.context,
      );
    const task: Promise<void> = (earlier.size === 0 ? write() : Promise.all(earlier).then(write))
      .then((results) => this.onResults(results.map((r, i) => ({ ...r, id: batch[i]!.sourceId }))))
      .catch((error: unknown) => {
        this.failure ??= error;
      })
      .finally(() => {
        this.inFlight.delete(task);
        for (const key of keys) if (this.inFlightKeys.get(key) === task) this.inFlightKeys.delete(key);
      });
    this.inFlight.add(task);
    for (const key of keys) this.inFlightKeys.set(key, task);
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }
}
