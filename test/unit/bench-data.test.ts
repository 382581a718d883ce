import {
  allResources,
  directoryOf,
  loadTemplates,
  namedUuid,
  observationsOf,
  PATIENTS_PER_PRACTITIONER,
  planPatients,
  PRACTITIONERS_PER_FACILITY,
} from '../../scripts/bench/data';
import { DEFAULT_RESOURCE_TYPES, specOf } from '../../src/sync/resource-types';
import { referenceTargets } from '../../src/sync/sync-service';

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

  test('the directory is sized as a practice is: a Practitioner per 500 Patients, a facility per 5 Practitioners, a home Location per Patient', () => {
    const planned = planPatients(templates, 5001, 5001, 9, DEFAULT_RESOURCE_TYPES.split(','));
    const directory = [...directoryOf(templates, planned)];
    const count = (type: string) => directory.filter((r) => r.resourceType === type).length;
    expect(count('Practitioner')).toBe(Math.ceil(5001 / PATIENTS_PER_PRACTITIONER));
    expect(count('Organization')).toBe(Math.ceil(11 / PRACTITIONERS_PER_FACILITY));
    expect(count('Location')).toBe(3 + 11 + 5001);
    // Patients spread over the facilities; without the directory types none is generated.
    expect(new Set(planned.map((p) => p.facility)).size).toBe(3);
    expect([...directoryOf(templates, planPatients(templates, 50, 100, 9, ['Patient', 'Encounter']))]).toEqual([]);
  });

  test('ids are UUID-shaped, as OpenEMR requires, and do not collide at scale', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 200_000; i++) ids.add(namedUuid(42, 'Observation', i));
    expect(ids.size).toBe(200_000);
    for (const id of [...ids].slice(0, 100)) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  test('a mixed data set: every carried type the sample has, at its rate per Patient, in reference order, every carried reference resolving', () => {
    const types = DEFAULT_RESOURCE_TYPES.split(',');
    const planned = planPatients(templates, 30, 3000, 5, types);
    const all = [...allResources(templates, planned)];
    const count = (type: string) => all.filter((r) => r.resourceType === type).length;
    // Each patient-scoped carried type of the sample is generated (Encounter and Condition now; new rows when carried).
    for (const type of Object.keys(templates.others).filter((t) => types.includes(t))) {
      expect(count(type)).toBeGreaterThan(0);
      // The sample's rate per Patient, give or take the weights' rounding.
      expect(Math.abs(count(type) / 30 - templates.perPatient[type]!)).toBeLessThan(templates.perPatient[type]! * 0.25 + 1);
    }
    expect(count('Observation')).toBe(3000);
    expect(count('Encounter')).toBeGreaterThan(100);
    // Everything a resource points at (of a carried type) is generated, and comes before it.
    const seen = new Set<string>();
    const dangling: string[] = [];
    for (const r of all) {
      for (const ref of specOf(r.resourceType).references) {
        // Dotted and list paths too (DocumentReference.context.encounter, DiagnosticReport.result).
        for (const id of referenceTargets(r as never, ref.element, ref.type))
          if (!seen.has(`${ref.type}/${id}`)) dangling.push(`${r.resourceType}/${r.id} -> ${ref.type}/${id}`);
      }
      seen.add(`${r.resourceType}/${r.id}`);
    }
    expect(dangling).toEqual([]);
    expect(new Set(all.map((r) => `${r.resourceType}/${r.id}`)).size).toBe(all.length);
    // The directory: one Practitioner and one facility for 30 Patients; Locations are the facility,
    // the user's and every Patient's "Home Address" (the sample's Patients all have one).
    expect([count('Practitioner'), count('Organization'), count('Location')]).toEqual([1, 1, 1 + 1 + 30]);
    // Every Encounter points at the directory, as OpenEMR's do when provider and facility are set.
    for (const e of all.filter((r) => r.resourceType === 'Encounter'))
      for (const ref of specOf('Encounter').references.filter((x) => x.type !== 'Patient'))
        expect(referenceTargets(e as never, ref.element, ref.type)).toHaveLength(1);
    // Patient and Observation only: the Observations are those of a plan without the other types.
    const plain = planPatients(templates, 30, 3000, 5);
    expect([...observationsOf(templates, plain[3]!)].map((o) => o.id)).toEqual(
      [...observationsOf(templates, planned[3]!)].map((o) => o.id),
    );
  });
});
