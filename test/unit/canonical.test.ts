import { canonicalJson, contentHash } from '../../src/fhir/canonical';

describe('deterministic output', () => {
  test('the same content in any key order serialises to the same bytes', () => {
    const a = { resourceType: 'Patient', id: '1', name: [{ given: ['A'], family: 'B' }], gender: 'female' };
    const b = { gender: 'female', name: [{ family: 'B', given: ['A'] }], id: '1', resourceType: 'Patient' };
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(canonicalJson(a).startsWith('{"resourceType":"Patient","id":"1",')).toBe(true);
  });

  test('array order is content and is kept', () => {
    expect(canonicalJson({ a: [1, 2] })).not.toBe(canonicalJson({ a: [2, 1] }));
  });

  test('undefined members are dropped rather than serialised', () => {
    expect(canonicalJson({ a: 1, b: undefined })).toBe('{"a":1}');
  });

  test('the content hash ignores server-owned meta but not profiles', () => {
    const base = { resourceType: 'Observation', id: 'o', status: 'final' };
    expect(contentHash({ ...base, meta: { versionId: '3', lastUpdated: 'x' } })).toBe(contentHash(base));
    expect(contentHash({ ...base, meta: { profile: ['p'] } })).not.toBe(contentHash(base));
  });
});
