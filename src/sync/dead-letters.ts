/**
 * A resource that could not be synced: what it was, where it failed and why. Never its content:
 * dead letters are read by operators and kept for days.
 */
export interface DeadLetter {
  resourceType: string;
  /** Source (OpenEMR) id, so a replay can read it again. */
  id: string;
  /** Where it failed: reading it, mapping/validating it, or writing it. */
  stage: 'read' | 'map' | 'write';
  status?: number;
  reason: string;
  attempts: number;
  /** ISO time of the failure. */
  at: string;
  runId: string;
  operation: string;
}

export interface DeadLetterStore {
  record(items: DeadLetter[]): Promise<void>;
  list(options?: { resourceType?: string; limit?: number }): Promise<DeadLetter[]>;
  /** The dead letter of one resource, if there is one (a point read, not a scan). */
  get(resourceType: string, id: string): Promise<DeadLetter | undefined>;
  /** The source ids of a type's dead letters, at most `limit` (keys only, one partition). */
  ids(resourceType: string, limit: number): Promise<string[]>;
  /** Removes the dead letter of each key (after a successful replay). */
  remove(keys: Array<{ resourceType: string; id: string }>): Promise<void>;
  /** Dead letters of this run that could not be stored (kept in memory only); absent: none ever are. */
  unpersistedFor?(runId: string): number;
}

/** In-memory store for single HTTP calls without storage, tests and the CLI's dry runs. */
export class MemoryDeadLetterStore implements DeadLetterStore {
  private readonly items = new Map<string, DeadLetter>();

  async record(items: DeadLetter[]): Promise<void> {
    for (const item of items) this.items.set(`${item.resourceType}/${item.id}`, item);
  }

  async list(options: { resourceType?: string; limit?: number } = {}): Promise<DeadLetter[]> {
    const all = [...this.items.values()].filter((d) => !options.resourceType || d.resourceType === options.resourceType);
    return all.slice(0, options.limit ?? all.length);
  }

  async get(resourceType: string, id: string): Promise<DeadLetter | undefined> {
    return this.items.get(`${resourceType}/${id}`);
  }

  async ids(resourceType: string, limit: number): Promise<string[]> {
    return (await this.list({ resourceType, limit })).map((d) => d.id);
  }

  async remove(keys: Array<{ resourceType: string; id: string }>): Promise<void> {
    for (const k of keys) this.items.delete(`${k.resourceType}/${k.id}`);
  }
}
