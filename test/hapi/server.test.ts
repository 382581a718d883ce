import { startHapiServer, type HapiServer } from '../../stack/hapi';

/** The HAPI FHIR server of the stack: built from Maven Central, R4, HL7's validator judging requests. */
describe('HAPI FHIR server (stack/hapi)', () => {
  let hapi: HapiServer;
  beforeAll(async () => {
    hapi = await startHapiServer({ log: (l) => console.log(l) });
    console.log(`HAPI FHIR: build ${hapi.build.how} in ${hapi.build.durationMs} ms, start ${hapi.startMs} ms, ${hapi.fhirUrl}`);
  }, 900_000);
  afterAll(async () => hapi?.close());

  const json = { 'content-type': 'application/fhir+json', accept: 'application/fhir+json' };

  it('answers /metadata with an R4 CapabilityStatement from HAPI FHIR', async () => {
    const res = await fetch(`${hapi.fhirUrl}/metadata`, { headers: json });
    expect(res.status).toBe(200);
    const cs = (await res.json()) as {
      fhirVersion: string;
      software: { name: string };
      rest: Array<{ resource: Array<{ type: string }> }>;
    };
    expect(cs.fhirVersion).toBe('4.0.1');
    expect(cs.software.name).toBe('HAPI FHIR Server');
    expect(cs.rest[0]!.resource.map((r) => r.type)).toEqual(expect.arrayContaining(['Patient', 'Observation', 'Provenance', 'AuditEvent']));
  });

  it('rejects a resource HL7 validator finds an error in with 422 and an OperationOutcome, and tallies it', async () => {
    await hapi.resetValidationReport();
    const bad = await fetch(`${hapi.fhirUrl}/Patient/bad-gender`, {
      method: 'PUT',
      headers: json,
      body: JSON.stringify({ resourceType: 'Patient', id: 'bad-gender', gender: 'bogus' }),
    });
    expect(bad.status).toBe(422);
    const outcome = (await bad.json()) as { resourceType: string; issue: Array<{ severity: string; expression?: string[] }> };
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue.some((i) => i.severity === 'error' && i.expression?.includes('Patient.gender'))).toBe(true);
    const good = await fetch(`${hapi.fhirUrl}/Patient/good`, {
      method: 'PUT',
      headers: json,
      body: JSON.stringify({ resourceType: 'Patient', id: 'good', gender: 'female' }),
    });
    expect(good.status).toBe(201);
    const report = await hapi.validationReport();
    expect(report.requests).toBe(2);
    expect(report.issues.filter((i) => i.severity === 'error').map((i) => i.path)).toContain('Patient.gender');
  });
});
