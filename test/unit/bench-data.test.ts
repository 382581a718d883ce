import { loadTemplates, namedUuid, observationsOf, planPatients } from '../../scripts/bench/data';

const templates = loadTemplates();

describe('benchmark data', () => {
  test('the same seed gives the same resources, another seed other ones', () => {
    const a = planPatients(templates, 5, 120, 7);
    const b = planPatients(templates, 5, 120, 7);
    const c = planPatients(templates, 5, 120, 8);
    expect(b).toEqual(a);
    expect([...observationsOf(templates, b[2]!)]).toEqual([...observationsOf(templates, a[2]!)]);
    expect(c.map((p) => p.patient.id)).not.toEqual(a.map((p) => p.patient.id));
  });

  test('exactly the requested counts, unique ids, subjects pointing at their Patient', () => {
    const planned = planPatients(templates, 7, 1000, 1);
    expect(planned).toHaveLength(7);
    const observations = planned.flatMap((p) => [...observationsOf(templates, p)].map((o) => ({ o, pid: p.patient.id })));
    expect(observations).toHaveLength(1000);
    const ids = new Set([...planned.map((p) => p.patient.id), ...observations.map(({ o }) => o.id)]);
    expect(ids.size).toBe(1007);
    for (const { o, pid } of observations) expect(o.subject).toEqual({ reference: `Patient/${pid}` });
  });

  test('resources keep the sample shapes and get varied lastUpdated', () => {
    const [p] = planPatients(templates, 1, 50, 3);
    const obs = [...observationsOf(templates, p!)];
    const templateKeys = new Set(templates.observations.flatMap((t) => Object.keys(t)));
    for (const o of obs) for (const k of Object.keys(o)) expect(templateKeys.has(k) || k === 'meta').toBe(true);
    expect(new Set(obs.map((o) => (o.meta as { lastUpdated: string }).lastUpdated)).size).toBeGreaterThan(40);
    expect(Object.keys(p!.patient)).toEqual(expect.arrayContaining(Object.keys(templates.patients[0]!).filter((k) => k !== 'meta')));
  });

  test('ids are UUID-shaped, as OpenEMR requires, and do not collide at scale', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 200_000; i++) ids.add(namedUuid(42, 'Observation', i));
    expect(ids.size).toBe(200_000);
    for (const id of [...ids].slice(0, 100)) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
