import { AUDIT_EVENT_MAX_ENTITIES, auditEventsForRun, policyUris, provenanceFor, type AuditPolicy } from '../../src/audit/records';
import { canonicalJson } from '../../src/fhir/canonical';

const policy: AuditPolicy = {
  conceptMaps: ['https://example.org/ConceptMap/b|2', 'https://example.org/ConceptMap/a|1'],
  deid: false,
  uncarriedReferences: 'drop',
  profileClaims: 'keep',
  localCodeSystem: 'urn:openemr:local-code',
};
const written = { resourceType: 'Patient', id: 'p-1', contentHash: 'h1', sourceLastUpdated: '2026-01-02T03:04:05-05:00' };
const source = 'https://emr.example.org/apis/default/fhir';

describe('audit records', () => {
  test('a Provenance names the written resource, the connector and OpenEMR, the source reference and the policy in force, and nothing else', () => {
    const p = provenanceFor(written, { sourceFhirBase: source, policy }) as Record<string, any>;
    expect(p.target).toEqual([{ reference: 'Patient/p-1' }]);
    expect(p.recorded).toBe('2026-01-02T08:04:05.000Z');
    expect(p.entity).toEqual([{ role: 'source', what: { identifier: { system: source, value: 'Patient/p-1' } } }]);
    expect(p.agent.map((a: any) => a.type.coding[0].code)).toEqual(['assembler', 'author']);
    expect(p.policy).toEqual(policyUris(policy));
    expect(p.policy.slice(0, 2)).toEqual(['https://example.org/ConceptMap/a|1', 'https://example.org/ConceptMap/b|2']);
    expect(p.id).toMatch(/^[A-Za-z0-9\-.]{1,64}$/);
  });

  test('the same content under the same policy is byte-identical under the same id; new content or another policy is a new Provenance', () => {
    const a = canonicalJson(provenanceFor(written, { sourceFhirBase: source, policy }));
    expect(
      canonicalJson(
        provenanceFor({ ...written }, { sourceFhirBase: source, policy: { ...policy, conceptMaps: [...policy.conceptMaps].reverse() } }),
      ),
    ).toBe(a);
    const changed = provenanceFor({ ...written, contentHash: 'h2' }, { sourceFhirBase: source, policy }) as { id: string };
    const deid = provenanceFor(written, { sourceFhirBase: source, policy: { ...policy, deid: true } }) as { id: string };
    const ids = new Set([JSON.parse(a).id, changed.id, deid.id]);
    expect(ids.size).toBe(3);
  });

  test("a run's AuditEvents list what it wrote once each, sorted, with its outcome and the run id as altId; deletes are action D", () => {
    const run = {
      runId: 'run-42',
      trigger: 'timer',
      startedAt: '2026-01-01T00:00:00Z',
      endedAt: '2026-01-01T00:01:00Z',
      status: 'partial' as const,
      written: ['Patient/b', 'Observation/o', 'Patient/b'],
      deleted: ['Observation/gone'],
    };
    const [u, d] = auditEventsForRun(run, { sourceFhirBase: source }) as Array<Record<string, any>>;
    expect(u!.outcome).toBe('4');
    expect(u!.action).toBe('U');
    expect(u!.entity.slice(1).map((x: any) => x.what.reference)).toEqual(['Observation/o', 'Patient/b']);
    expect(u!.agent[0].altId).toBe('run-42');
    expect(d!.action).toBe('D');
    expect(d!.entity.slice(1).map((x: any) => [x.name, x.what.type, x.what.reference])).toEqual([
      ['Observation/gone', 'Observation', undefined],
    ]);
    expect(new Set([u!.id, d!.id]).size).toBe(2);
    for (const e of [u!, d!]) expect(e.id).toMatch(/^[A-Za-z0-9\-.]{1,64}$/);
  });

  test('a run that wrote and deleted nothing has no AuditEvent; a big run is recorded in parts of at most AUDIT_EVENT_MAX_ENTITIES', () => {
    const base = { runId: 'r', trigger: 'cli', startedAt: '2026-01-01T00:00:00Z', endedAt: '2026-01-01T00:00:01Z', status: 'ok' as const };
    expect(auditEventsForRun({ ...base, written: [] }, { sourceFhirBase: source })).toEqual([]);
    const many = Array.from({ length: AUDIT_EVENT_MAX_ENTITIES + 1 }, (_, i) => `Observation/o${i}`);
    const parts = auditEventsForRun({ ...base, written: many }, { sourceFhirBase: source }) as Array<Record<string, any>>;
    expect(parts.map((p) => p.entity.length - 1)).toEqual([AUDIT_EVENT_MAX_ENTITIES, 1]);
    expect(parts.every((p) => p.agent[0].altId === 'r')).toBe(true);
  });

  test('a bundle Provenance targets every resource; de-identified, it names no source id', () => {
    const two = [
      written,
      { ...written, resourceType: 'Observation', id: 'o-1', contentHash: 'h9', sourceLastUpdated: '2026-02-01T00:00:00Z' },
    ];
    const p = provenanceFor(two, { sourceFhirBase: source, policy }) as Record<string, any>;
    expect(p.target).toEqual([{ reference: 'Observation/o-1' }, { reference: 'Patient/p-1' }]);
    expect(p.recorded).toBe('2026-02-01T00:00:00.000Z');
    expect(provenanceFor([...two].reverse(), { sourceFhirBase: source, policy })).toEqual(p);
    const deid = provenanceFor([{ ...written, id: 'pseudo', sourceId: 'p-1' }], {
      sourceFhirBase: source,
      policy: { ...policy, deid: true },
    });
    expect(JSON.stringify(deid)).not.toContain('p-1');
  });
});
