/**
 * Bulk export as OpenEMR does it: the kick-off writes one NDJSON document per type at once (the
 * "job" is finished when the 202 goes out), `_since` filters on lastUpdated, and `_type` is ignored
 * (openemr#8668), so a client asking for Observation only still gets Patient too. Outputs are
 * served as /fhir/Binary/<documents.id>. Outputs hold references to the stored JSON strings, not
 * copies, so exporting a large table costs one pointer per resource.
 */
import { randomUUID } from 'node:crypto';
import { formatLocalInstant } from './fhir-dates';
import { SUPPORTED_TYPES, SupportedType } from './resource-shape';
import { ResourceStore } from './resource-store';

export interface ExportJob {
  id: string;
  request: string;
  transactionTime: string;
  clientId: string;
  outputs: Array<{ type: SupportedType; binaryId: string }>;
  /** Status polls still to answer 202 before the job shows as complete. */
  pendingPolls: number;
}

export interface BinaryDocument {
  type: SupportedType;
  lines: string[];
}

export class BulkExports {
  private readonly jobs = new Map<string, ExportJob>();
  private readonly binaries = new Map<string, BinaryDocument>();
  /** OpenEMR documents.id is an integer sequence. */
  private nextDocumentId = 1;

  constructor(
    private readonly store: ResourceStore,
    private readonly offsetMinutes: number,
    /** How many status polls answer 202 (in progress) before the job completes. */
    public pendingPolls = 0,
  ) {}

  /** Runs the export now; `since` (epoch seconds) keeps resources with lastUpdated >= since. */
  start(opts: { request: string; clientId: string; since?: number; nowSeconds: number }): ExportJob {
    const job: ExportJob = {
      id: randomUUID(),
      request: opts.request,
      transactionTime: formatLocalInstant(opts.nowSeconds, this.offsetMinutes),
      clientId: opts.clientId,
      outputs: [],
      pendingPolls: this.pendingPolls,
    };
    for (const type of SUPPORTED_TYPES) {
      const records = opts.since === undefined ? [...this.store.table(type).byId.values()] : this.store.table(type).byTime.range(opts.since, Infinity);
      if (records.length === 0) continue;
      const binaryId = String(this.nextDocumentId++);
      this.binaries.set(binaryId, { type, lines: records.map((r) => r.json) });
      job.outputs.push({ type, binaryId });
    }
    this.jobs.set(job.id, job);
    return job;
  }

  job(id: string): ExportJob | undefined {
    return this.jobs.get(id);
  }

  binary(id: string): BinaryDocument | undefined {
    return this.binaries.get(id);
  }

  cancel(id: string): boolean {
    const job = this.jobs.get(id);
    if (!job) return false;
    for (const o of job.outputs) this.binaries.delete(o.binaryId);
    this.jobs.delete(id);
    return true;
  }
}
