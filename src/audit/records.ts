import { createHash } from 'node:crypto';

/**
 * The audit trail's two records, built purely from references and settings (never resource content):
 * a Provenance per written resource and an AuditEvent per run. Both are deterministic, so a re-sync of
 * unchanged data produces byte-identical records under the same ids, and the target keeps its version.
 */

export const CONNECTOR_NAME = 'fhirsync (OpenEMR to FHIR sync connector)';

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
  id: string;
  /** Content hash of what was written (canonical JSON, server meta removed). */
  contentHash: string;
  /** The source resource's lastUpdated (an instant): when the recorded content came to be. */
  sourceLastUpdated: string;
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

/**
 * A Provenance for one written resource, meant to travel in the same bundle: target = the resource
 * (unversioned: the version is the server's to give), recorded = the source's lastUpdated, agents =
 * the connector (assembler) and the source OpenEMR (source), entity = the source reference as a
 * logical reference (identifier: the source FHIR base and Type/id), policy = what was in force. Its id
 * is a hash of all of that, so the same content under the same policy is the same Provenance.
 */
export function provenanceFor(
  resource: WrittenResource,
  options: { sourceFhirBase: string; policy: AuditPolicy },
): Record<string, unknown> {
  const ref = `${resource.resourceType}/${resource.id}`;
  const policy = policyUris(options.policy);
  return {
    resourceType: 'Provenance',
    id: hashId('fhirsync-prov', ref, resource.contentHash, options.sourceFhirBase, ...policy),
    target: [{ reference: ref }],
    recorded: new Date(resource.sourceLastUpdated).toISOString(),
    policy,
    activity: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-DataOperation', code: 'UPDATE', display: 'revise' }] },
    agent: [
      {
        type: {
          coding: [
            { system: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type', code: 'assembler', display: 'Assembler' },
          ],
        },
        who: { display: CONNECTOR_NAME },
      },
      {
        type: {
          coding: [{ system: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type', code: 'author', display: 'Author' }],
        },
        who: { identifier: { system: 'urn:ietf:rfc:3986', value: options.sourceFhirBase }, display: 'OpenEMR' },
      },
    ],
    entity: [{ role: 'source', what: { identifier: { system: options.sourceFhirBase, value: ref } } }],
  };
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
}

/**
 * The AuditEvent of one run: id from the run id, entity = every resource it wrote (references only),
 * outcome 0 / 4 / 8 for ok / partial / failed. Asked as AuditEvent?entity=Patient/X ("which runs wrote
 * Patient/X") and AuditEvent/{id} ("what did run R write").
 */
export function auditEventForRun(run: RunRecord, options: { sourceFhirBase: string }): Record<string, unknown> {
  const written = [...new Set(run.written)].sort();
  return {
    resourceType: 'AuditEvent',
    id: hashId('fhirsync-run', run.runId),
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' },
    subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: 'update', display: 'update' }],
    action: 'U',
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
        what: { identifier: { system: 'urn:ietf:rfc:3986', value: options.sourceFhirBase } },
        type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2', display: 'System Object' },
        role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '24', display: 'Query' },
      },
      ...written.map((reference) => ({
        what: { reference },
        type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2', display: 'System Object' },
      })),
    ],
  };
}
