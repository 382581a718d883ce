/**
 * In-memory OpenEMR data: Patients and Observations kept as their served JSON text (cheap to hold,
 * no re-serialisation per response) plus the few fields searches need. Indexes: by id, Observation
 * by patient, and both types by (lastUpdated, id), so no request scans the whole table.
 */
import { formatLocalNaive, instantSeconds } from './fhir-dates';
import {
  codingTokens,
  dropConditionalReferences,
  FhirResource,
  linkConditionalReferences,
  isSupportedType,
  rewriteUrnReferences,
  SUPPORTED_TYPES,
  SupportedType,
  withServerMeta,
} from './resource-shape';
import { MEDICAL_SERVICES } from './services/medical';
import { isMedicalType, isReportType } from './standin-types';
import { ServerClock } from './server-clock';
import { ServerZone } from './server-zone';
import { TimeIndex } from './time-index';
import { reportRecordFields, reportRowDate } from './report-types';

export interface StoredRecord {
  type: SupportedType;
  id: string;
  /**
   * The row's date column as local wall-clock seconds (server-zone.ts), what meta.lastUpdated says
   * and what _lastUpdated compares. null: the column is NULL (a lab without a
   * report date, a form without a date): it never matches _lastUpdated, is never exported, and is
   * served with meta.lastUpdated "now" (FhirObservationLaboratoryService.php:221).
   */
  lastUpdated: number | null;
  /** Row number: insertion order, kept across updates; MySQL's order without (or among ties of) ORDER BY. */
  seq: number;
  /** The resource exactly as served. */
  json: string;
  /** Observation: the Patient id of its subject. */
  patientId?: string;
  /** Observation: `system|code` of every category / code coding. */
  categoryTokens?: string[];
  codeTokens?: string[];
  /**
   * The OpenEMR sub-service it would come from: Observation's first category code; a report's
   * mapped service (report-types.ts REPORT_SUB_SERVICES).
   */
  subService?: string;
  /** Observation: effective time (local wall-clock seconds) for the `date` parameter. */
  effective?: number;
}

/** A record whose date column is set: the only kind a _lastUpdated index holds. */
export type DatedRecord = StoredRecord & { lastUpdated: number };
const isDated = (rec: StoredRecord): rec is DatedRecord => rec.lastUpdated !== null;

class TypeTable {
  readonly byId = new Map<string, StoredRecord>();
  readonly byTime = new TimeIndex<DatedRecord>();
  private nextSeq = 1;

  /** The row number a write of this id gets: its old one, else the next. */
  seqFor(id: string): number {
    return this.byId.get(id)?.seq ?? this.nextSeq++;
  }
  /** Observation ids per Patient id. */
  readonly byPatient = new Map<string, Set<string>>();

  insert(rec: StoredRecord, bulk: boolean): void {
    this.byId.set(rec.id, rec);
    if (isDated(rec)) {
      if (bulk) this.byTime.addUnsorted(rec);
      else this.byTime.add(rec);
    }
    if (rec.patientId) {
      let set = this.byPatient.get(rec.patientId);
      if (!set) this.byPatient.set(rec.patientId, (set = new Set()));
      set.add(rec.id);
    }
  }

  /** Removes from the secondary indexes only (byId is overwritten or deleted by the caller). */
  unindex(rec: StoredRecord): void {
    if (isDated(rec)) this.byTime.remove(rec);
    if (rec.patientId) {
      const set = this.byPatient.get(rec.patientId);
      set?.delete(rec.id);
      if (set && set.size === 0) this.byPatient.delete(rec.patientId);
    }
  }
}

export interface StoreOptions {
  clock: ServerClock;
  zone: ServerZone;
  /** lastUpdated (local wall-clock seconds) for loaded resources without a usable date of their own (all Patients). */
  loadEpochNaive: number;
}

/** A date column value: local wall-clock seconds, and the text meta.lastUpdated gets when written. */
interface RowDate {
  naive: number;
  text: string;
}

export class ResourceStore {
  private readonly tables = Object.fromEntries(SUPPORTED_TYPES.map((t) => [t, new TypeTable()])) as Record<SupportedType, TypeTable>;
  /** Synthea conditional reference -> `Type/uuid` of a directory row (data/openemr-directory/links.json). */
  private links = new Map<string, string>();
  /** Category/code strings repeat millions of times; one copy each keeps 1M Observations affordable. */
  private readonly interned = new Map<string, string>();
  private readonly intern = (s: string): string => {
    const hit = this.interned.get(s);
    if (hit !== undefined) return hit;
    this.interned.set(s, s);
    return s;
  };

  private readonly subServices = new Set<string>();

  constructor(private readonly opts: StoreOptions) {}

  /** Links Synthea's conditional references to directory rows, as an import sets provider_id/facility_id. */
  setLinks(links: Record<string, string>): void {
    this.links = new Map(Object.entries(links));
  }

  table(type: SupportedType): TypeTable {
    return this.tables[type];
  }

  /**
   * How many distinct Observation sub-services (first category codes) have ever been stored: an
   * upper bound that lets a _count search stop scanning once each has a full page.
   */
  subServiceCount(): number {
    return this.subServices.size;
  }

  count(type: SupportedType): number {
    return this.tables[type].byId.size;
  }

  ids(type: SupportedType): string[] {
    return [...this.tables[type].byId.keys()];
  }

  getRecord(type: SupportedType, id: string): StoredRecord | undefined {
    return this.tables[type].byId.get(id);
  }

  get(type: SupportedType, id: string): FhirResource | undefined {
    const rec = this.getRecord(type, id);
    return rec ? (JSON.parse(rec.json) as FhirResource) : undefined;
  }

  /**
   * Adds a resource as a data import would: references resolved, lastUpdated derived from the
   * resource itself so a reload gives the same answers (see loadedLastUpdated).
   */
  importResource(resource: FhirResource): StoredRecord {
    return this.store(resource, this.loadedLastUpdated(resource), true);
  }

  /** Ends a run of importResource calls: sorts the lastUpdated indexes once. */
  finishImport(): void {
    for (const table of Object.values(this.tables)) table.byTime.ensureSorted();
  }

  /**
   * Create-or-update as a write in OpenEMR: lastUpdated = server clock now, versionId stays "1".
   * `lastUpdated` overrides the date column: an epoch second in the past (a lab filed today with
   * last week's report date, a back-dated form, many rows in one second), or null (a NULL column).
   */
  put(resource: FhirResource, opts: { lastUpdated?: number | null } = {}): { record: StoredRecord; created: boolean } {
    const type = this.checkType(resource.resourceType);
    if (!resource.id) throw new Error('resource.id is required');
    const created = !this.tables[type].byId.has(resource.id);
    const lastUpdated = opts.lastUpdated === undefined ? this.opts.clock.nowSeconds() : opts.lastUpdated;
    return { record: this.store(resource, lastUpdated === null ? null : this.rowDate(lastUpdated), false), created };
  }

  /** The date column a write at this instant stores: the wall clock then, labelled with the offset then. */
  rowDate(epochSeconds: number): RowDate {
    const zone = this.opts.zone;
    const naive = zone.toNaive(epochSeconds);
    return { naive, text: formatLocalNaive(naive, 0) + zone.label(zone.offsetAt(epochSeconds)) };
  }

  /**
   * Sets the date column of existing records to one instant without touching their content: what
   * the 7.0.3 upgrade's `ALTER TABLE … ADD last_updated … DEFAULT CURRENT_TIMESTAMP` does to every
   * legacy row (sql/7_0_2-to-7_0_3_upgrade.sql:184,204). Returns how many records it stamped.
   */
  restamp(type: SupportedType, ids: Iterable<string>, epochSeconds: number): number {
    const table = this.tables[type];
    const date = this.rowDate(epochSeconds);
    let n = 0;
    for (const id of [...ids]) {
      const old = table.byId.get(id);
      if (!old) continue;
      table.unindex(old);
      const resource = JSON.parse(old.json) as FhirResource;
      table.insert(this.buildRecord(withServerMeta(resource, id, date.text), date.naive, old.seq), false);
      n++;
    }
    return n;
  }

  /** Hard delete, as OpenEMR does: no tombstone, no history; the record just disappears. */
  remove(type: SupportedType, id: string): boolean {
    const table = this.tables[type];
    const rec = table.byId.get(id);
    if (!rec) return false;
    table.unindex(rec);
    table.byId.delete(id);
    return true;
  }

  /**
   * Changes an Observation's content but not its lastUpdated: OpenEMR labs report the report date
   * as lastUpdated, so a corrected result is invisible to `_lastUpdated` searches. Without a patch
   * the result is marked `status: corrected`.
   */
  labCorrection(id: string, patch?: Record<string, unknown>): FhirResource {
    const table = this.tables.Observation;
    const old = table.byId.get(id);
    if (!old) throw new NotFoundError(`Observation/${id} not found`);
    const current = JSON.parse(old.json) as FhirResource;
    const changes = patch && Object.keys(patch).length > 0 ? patch : { status: 'corrected' };
    const next: FhirResource = { ...current, ...changes, resourceType: 'Observation', id, meta: current.meta };
    const rec = this.buildRecord(next, old.lastUpdated, old.seq);
    if (rec.patientId !== old.patientId || !isDated(rec)) {
      table.unindex(old);
      table.insert(rec, false);
    } else {
      table.byTime.replace(rec);
      table.byId.set(id, rec);
    }
    return JSON.parse(rec.json) as FhirResource;
  }

  /** What meta.lastUpdated a loaded resource gets; deterministic so reloads and tests agree. */
  loadedLastUpdated(resource: FhirResource): RowDate {
    const at = (value: unknown) => {
      const t = instantSeconds(value, this.opts.zone.offsetNow());
      return t === null ? null : this.rowDate(t);
    };
    const fromMeta = at(resource.meta?.lastUpdated);
    if (fromMeta) return fromMeta;
    // form_encounter.last_update (FhirEncounterService.php): a visit's row last changes when it
    // closes; lists.last_updated_time (FhirConditionService.php): a problem when it was recorded.
    // Both are MySQL TIMESTAMPs, which hold nothing before 1970: an older row was written at the load.
    const rowDates =
      resource.resourceType === 'Encounter'
        ? [(resource.period as { end?: unknown } | undefined)?.end, (resource.period as { start?: unknown } | undefined)?.start]
        : resource.resourceType === 'Condition'
          ? [resource.recordedDate, resource.onsetDateTime]
          : isMedicalType(resource.resourceType)
            ? MEDICAL_SERVICES[resource.resourceType].rowDates(resource)
            : [];
    for (const candidate of rowDates) {
      const seconds = instantSeconds(candidate, this.opts.zone.offsetNow());
      if (seconds !== null) {
        if (seconds > 0) return this.rowDate(seconds);
        break;
      }
    }
    const reportDate = reportRowDate(resource, this.opts.zone.offsetNow());
    if (reportDate !== undefined) return reportDate === null ? this.loadRowDate() : this.rowDate(reportDate);
    if (resource.resourceType === 'Observation') {
      // OpenEMR stamps labs with the report date and vitals with the form date: issued, else effective.
      const period = resource.effectivePeriod as { start?: unknown } | undefined;
      for (const candidate of [resource.issued, resource.effectiveDateTime, resource.effectiveInstant, period?.start]) {
        const t = at(candidate);
        if (t) return t;
      }
    }
    return this.loadRowDate();
  }

  private loadRowDate(): RowDate {
    const naive = this.opts.loadEpochNaive;
    return { naive, text: formatLocalNaive(naive, 0) + this.opts.zone.label(this.opts.zone.offsetAt(naive)) };
  }

  private checkType(type: string): SupportedType {
    if (!isSupportedType(type)) throw new Error(`The stand-in serves ${SUPPORTED_TYPES.join(', ')} only, not ${type}`);
    return type;
  }

  private store(resource: FhirResource, date: RowDate | null, bulk: boolean): StoredRecord {
    const type = this.checkType(resource.resourceType);
    if (typeof resource.id !== 'string' || resource.id === '') throw new Error(`${type} without id`);
    rewriteUrnReferences(resource, (id) =>
      this.tables.Patient.byId.has(id)
        ? 'Patient'
        : this.tables.Encounter.byId.has(id)
          ? 'Encounter'
          : this.tables.Observation.byId.has(id)
            ? 'Observation'
            : undefined,
    );
    if (type !== 'Patient' && type !== 'Observation') {
      linkConditionalReferences(resource, this.links);
      resource = { ...(dropConditionalReferences(resource) as FhirResource), id: resource.id };
    }
    if (isMedicalType(type)) resource = MEDICAL_SERVICES[type].shape(resource);
    const id = resource.id as string;
    const stored = type === 'Observation' && this.opts.zone.followsDst ? this.withWallClockTimes(resource) : resource;
    const table = this.tables[type];
    // A NULL-dated row is stored with the write time in meta; it is served with "now" instead.
    const text = (date ?? this.rowDate(this.opts.clock.nowSeconds())).text;
    const rec = this.buildRecord(withServerMeta(stored, id, text), date?.naive ?? null, table.seqFor(id));
    const old = table.byId.get(rec.id);
    if (old) table.unindex(old);
    table.insert(rec, bulk);
    return rec;
  }

  /**
   * With a DST zone, an Observation's effectiveDateTime and issued are kept as OpenEMR keeps them:
   * local wall-clock DATETIME columns (one-second precision), labelled here with the offset at that
   * instant. servedJson relabels them with today's offset (UtilsService::getLocalDateAsUTC, date('P')).
   */
  private withWallClockTimes(resource: FhirResource): FhirResource {
    const zone = this.opts.zone;
    const out: FhirResource = { ...resource };
    for (const field of ['effectiveDateTime', 'issued'] as const) {
      const value = resource[field];
      if (typeof value !== 'string' || !value.includes('T')) continue;
      const t = instantSeconds(value, zone.offsetNow());
      if (t !== null) out[field] = formatLocalNaive(zone.toNaive(t), 0) + zone.label(zone.offsetAt(t));
    }
    return out;
  }

  private buildRecord(resource: FhirResource, lastUpdated: number | null, seq: number): StoredRecord {
    const type = this.checkType(resource.resourceType);
    const rec: StoredRecord = { type, id: resource.id as string, lastUpdated, seq, json: JSON.stringify(resource) };
    if (type === 'Encounter' || type === 'Condition') {
      const subject = (resource.subject as { reference?: unknown } | undefined)?.reference;
      if (typeof subject === 'string' && subject.startsWith('Patient/')) rec.patientId = this.intern(subject.slice(8));
      const period = resource.period as { start?: unknown } | undefined;
      const eff = instantSeconds(period?.start, this.opts.zone.offsetNow());
      if (eff !== null) rec.effective = this.opts.zone.toNaive(eff);
    }
    if (isReportType(type)) {
      const fields = reportRecordFields(resource, this.opts.zone.offsetNow(), this.intern);
      if (fields.patientId !== undefined) rec.patientId = fields.patientId;
      rec.codeTokens = fields.codeTokens;
      rec.categoryTokens = fields.categoryTokens;
      rec.subService = fields.subService;
      if (fields.effective !== undefined) rec.effective = this.opts.zone.toNaive(fields.effective);
    } else if (isMedicalType(type)) {
      const service = MEDICAL_SERVICES[type];
      const patient = (resource[service.patientElement] as { reference?: unknown } | undefined)?.reference;
      if (typeof patient === 'string' && patient.startsWith('Patient/')) rec.patientId = this.intern(patient.slice(8));
      const eff = instantSeconds(service.dateOf?.(resource), this.opts.zone.offsetNow());
      if (eff !== null) rec.effective = this.opts.zone.toNaive(eff);
    }
    if (type === 'Observation') {
      const subject = (resource.subject as { reference?: unknown } | undefined)?.reference;
      if (typeof subject === 'string' && subject.startsWith('Patient/')) rec.patientId = this.intern(subject.slice(8));
      rec.categoryTokens = codingTokens(resource.category, this.intern);
      rec.codeTokens = codingTokens(resource.code, this.intern);
      const first = rec.categoryTokens[0];
      rec.subService = first === undefined ? '' : this.intern(first.slice(first.indexOf('|') + 1));
      this.subServices.add(rec.subService);
      const period = resource.effectivePeriod as { start?: unknown } | undefined;
      const eff = instantSeconds(resource.effectiveDateTime ?? resource.effectiveInstant ?? period?.start, this.opts.zone.offsetNow());
      if (eff !== null) rec.effective = this.opts.zone.toNaive(eff);
    }
    return rec;
  }
}

export class NotFoundError extends Error {}
