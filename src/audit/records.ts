import { createHash } from 'node:crypto';

/**
 * The audit trail's two records, built purely from references, hashes and settings (never resource
 * content): a Provenance per written resource or per written bundle, and AuditEvents per run. A
 * Provenance is deterministic, so a re-sync of unchanged data produces byte-identical records under the
 * same ids and the target keeps their version; a run's AuditEvents say which run wrote what.
 */

export const CONNECTOR_NAME = 'fhirsync (OpenEMR to FHIR sync connector)';

/** Most entities one AuditEvent lists: a run that writes more is recorded in several parts (same altId). */
export const AUDIT_EVENT_MAX_ENTITIES = 1000;

/** What was in force when a resource was mapped: it becomes Provenance.policy (URIs only). */
export interface AuditPolicy {
  /** Canonical URLs (with |version when known) of the ConceptMaps applied. */
  conceptMaps: string[];
  deid: boolean;
  uncarriedReferences: 'keep' | 'drop';
  profileClaims: 'keep' | 'drop';
  localCodeSystem: string;
}

export interface WrittenResource {
  resourceType: string;
  /** The id written (the target's; a pseudonym when de-identifying). */
  id: string;
  /** Content hash of what was written (canonical JSON, server meta removed). */
  contentHash: string;
  /** The source resource's lastUpdated (an instant): when the recorded content came to be. */
  sourceLastUpdated: string;
  /** The source resource's id; left out of the record when de-identifying (it would undo the pseudonym). */
  sourceId?: string;
}

/** The policy URIs, sorted: ConceptMaps as they are, the settings as urn:fhirsync:policy:name=value. */
export function policyUris(policy: AuditPolicy): string[] {
  const settings = [
    `urn:fhirsync:policy:deid=${policy.deid ? 'on' : 'off'}`,
    `urn:fhirsync:policy:uncarried-references=${policy.uncarriedReferences}`,
    `urn:fhirsync:policy:profile-claims=${policy.profileClaims}`,
    `urn:fhirsync:policy:local-code-system=${encodeURIComponent(policy.localCodeSystem)}`,
  ];
  return [...[...policy.conceptMaps].sort(), ...settings.sort()];
}

function hashId(prefix: string, ...parts: string[]): string {
  // FHIR ids are at most 64 characters of [A-Za-z0-9-.].
  return `${prefix}-${createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 48)}`;
}

const PARTICIPANT = 'http://terminology.hl7.org/CodeSystem/provenance-participant-type';
const ENTITY_TYPE = { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2', display: 'System Object' };

/**
 * A Provenance for written resources (one, or a whole bundle's), meant to travel in the same bundle:
 * target = the resources (unversioned: the version is the server's to give), recorded = the latest
 * source lastUpdated among them, agents = the connector (assembler) and the source OpenEMR (author),
 * entity = each source reference as a logical reference (identifier: the source FHIR base and
 * Type/id; none when de-identifying), policy = what was in force. Its id is a hash of all of that, so
 * the same content under the same policy is the same Provenance.
 */
export function provenanceFor(
  written: WrittenResource | readonly WrittenResource[],
  options: { sourceFhirBase: string; policy: AuditPolicy },
): Record<string, unknown> {
  const list = [...(Array.isArray(written) ? written : [written as WrittenResource])].sort((a, b) =>
    refOf(a) < refOf(b) ? -1 : refOf(a) > refOf(b) ? 1 : 0,
  );
  const policy = policyUris(options.policy);
  const recorded = list.map((r) => new Date(r.sourceLastUpdated).toISOString()).sort();
  const entity = options.policy.deid
    ? []
    : list.map((r) => ({
        role: 'source',
        what: { identifier: { system: options.sourceFhirBase, value: `${r.resourceType}/${r.sourceId ?? r.id}` } },
      }));
  return {
    resourceType: 'Provenance',
    id: hashId('fhirsync-prov', ...list.map((r) => `${refOf(r)}#${r.contentHash}`), options.sourceFhirBase, ...policy),
    target: list.map((r) => ({ reference: refOf(r) })),
    recorded: recorded[recorded.length - 1],
    policy,
    activity: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-DataOperation', code: 'UPDATE', display: 'revise' }] },
    agent: [
      {
        type: { coding: [{ system: PARTICIPANT, code: 'assembler', display: 'Assembler' }] },
        who: { display: CONNECTOR_NAME },
      },
      {
        type: { coding: [{ system: PARTICIPANT, code: 'author', display: 'Author' }] },
        who: { identifier: { system: 'urn:ietf:rfc:3986', value: options.sourceFhirBase }, display: 'OpenEMR' },
      },
    ],
    ...(entity.length > 0 ? { entity } : {}),
  };
}

function refOf(r: { resourceType: string; id: string }): string {
  return `${r.resourceType}/${r.id}`;
}

export interface RunRecord {
  runId: string;
  /** What triggered it: timer, http, queue, cli. */
  trigger: string;
  startedAt: string;
  endedAt: string;
  status: 'ok' | 'partial' | 'failed';
  /** "Type/id" of every resource the run created or updated (unchanged ones are not written again). */
  written: string[];
  /** "Type/id" of every resource the run deleted in the target. */
  deleted?: string[];
}

/**
 * The AuditEvents of one run: one per action (U for what it wrote, D for what it deleted) and per
 * AUDIT_EVENT_MAX_ENTITIES entities, all carrying the run id as agent.altId. entity = the
 * resources (references only), outcome 0 / 4 / 8 for ok / partial / failed. The id hashes the run id,
 * the action and the entities, so the runs of a replay (one run id, several calls) each keep theirs.
 * Asked as AuditEvent?entity=Patient/X ("which runs wrote Patient/X"), AuditEvent?entity-name=Patient/X
 * (which deleted it) and AuditEvent?altid=R ("what did run R write"). A run that wrote and deleted nothing has none.
 */
export function auditEventsForRun(run: RunRecord, options: { sourceFhirBase: string }): Array<Record<string, unknown>> {
  const events: Array<Record<string, unknown>> = [];
  const actions: Array<['U' | 'D', string[]]> = [
    ['U', [...new Set(run.written)].sort()],
    ['D', [...new Set(run.deleted ?? [])].sort()],
  ];
  for (const [action, refs] of actions)
    for (let i = 0; i < refs.length; i += AUDIT_EVENT_MAX_ENTITIES)
      events.push(auditEvent(run, action, refs.slice(i, i + AUDIT_EVENT_MAX_ENTITIES), options.sourceFhirBase));
  return events;
}

function auditEvent(run: RunRecord, action: 'U' | 'D', refs: string[], sourceFhirBase: string): Record<string, unknown> {
  const interaction = action === 'U' ? 'update' : 'delete';
  return {
    resourceType: 'AuditEvent',
    id: hashId('fhirsync-run', run.runId, action, ...refs),
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' },
    subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: interaction, display: interaction }],
    action,
    period: { start: new Date(run.startedAt).toISOString(), end: new Date(run.endedAt).toISOString() },
    recorded: new Date(run.endedAt).toISOString(),
    outcome: run.status === 'ok' ? '0' : run.status === 'partial' ? '4' : '8',
    agent: [{ who: { display: CONNECTOR_NAME }, requestor: true, altId: run.runId }],
    source: {
      site: run.trigger,
      observer: { display: CONNECTOR_NAME },
      type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }],
    },
    entity: [
      {
        what: { identifier: { system: 'urn:ietf:rfc:3986', value: sourceFhirBase } },
        type: ENTITY_TYPE,
        role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '24', display: 'Query' },
      },
      // What was deleted is named, not referenced: HAPI FHIR refuses a reference to a deleted resource
      // (referential integrity on write), so AuditEvent?entity-name=Type/id finds a delete.
      ...refs.map((reference) =>
        action === 'U'
          ? { what: { reference }, type: ENTITY_TYPE }
          : { what: { type: reference.split('/')[0], display: `${reference} (deleted)` }, type: ENTITY_TYPE, name: reference },
      ),
    ],
  };
}
