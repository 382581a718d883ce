import { auditEventForRun, policyUris, provenanceFor, type AuditPolicy } from '../../src/audit/records';
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

  test("a run's AuditEvent lists what it wrote once each, sorted, with its outcome; the id comes from the run id", () => {
    const run = {
      runId: 'run-42',
      trigger: 'timer',
      startedAt: '2026-01-01T00:00:00Z',
      endedAt: '2026-01-01T00:01:00Z',
      status: 'partial' as const,
      written: ['Patient/b', 'Observation/o', 'Patient/b'],
    };
    const e = auditEventForRun(run, { sourceFhirBase: source }) as Record<string, any>;
    expect(e.outcome).toBe('4');
    expect(e.entity.slice(1).map((x: any) => x.what.reference)).toEqual(['Observation/o', 'Patient/b']);
    expect(e.agent[0].altId).toBe('run-42');
    expect(e.id).toBe((auditEventForRun({ ...run, written: [] }, { sourceFhirBase: source }) as { id: string }).id);
    expect(e.id).toMatch(/^[A-Za-z0-9\-.]{1,64}$/);
  });
});
