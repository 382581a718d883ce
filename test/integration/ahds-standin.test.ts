import { startAhdsStandIn, type AhdsStandIn } from '../../stack/ahds';
import { startEntraStandIn, type EntraStandIn } from '../../stack/entra';
import { ahdsClient, observation, patient, tokenFor, type AhdsTestClient } from '../helpers/ahds-client';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('AHDS FHIR stand-in: auth, single-resource interactions and search', () => {
  let entra: EntraStandIn;
  let ahds: AhdsStandIn;
  let c: AhdsTestClient;
  beforeAll(async () => {
    entra = await startEntraStandIn({
      clients: [
        { clientId: 'writer-app', clientSecret: 'w-secret' },
        { clientId: 'reader-app', clientSecret: 'r-secret' },
      ],
    });
    ahds = await startAhdsStandIn({ entra, withoutWriterRole: ['reader-app'] });
    c = await ahdsClient(ahds);
  });
  afterAll(async () => {
    await ahds.close();
    await entra.close();
  });

  // ------------------------------------------------------------------ auth

  test('GET /metadata answers a CapabilityStatement without a token', async () => {
    const res = await fetch(`${ahds.fhirUrl}/metadata`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/fhir+json; charset=utf-8');
    const cs = (await res.json()) as any;
    expect(cs.resourceType).toBe('CapabilityStatement');
    expect(cs.fhirVersion).toBe('4.0.1');
    expect(cs.rest[0].resource.map((r: any) => r.type)).toEqual(expect.arrayContaining(['Patient', 'Observation']));
  });

  test('request without a token gets 401 login OperationOutcome with WWW-Authenticate', async () => {
    const res = await fetch(`${ahds.fhirUrl}/Patient/p-none`);
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toBe('application/fhir+json; charset=utf-8');
    const www = res.headers.get('www-authenticate')!;
    expect(www).toMatch(/^Bearer authorization_uri="[^"]+"/);
    expect(www).toContain(`authorization_uri="${entra.authorityHost}/${entra.tenantId}"`);
    expect(www).toContain(`resource_id="${ahds.audience}"`);
    const body = (await res.json()) as any;
    expect(body.resourceType).toBe('OperationOutcome');
    expect(body.issue[0]).toMatchObject({ severity: 'error', code: 'login', diagnostics: 'Authentication failed.' });
  });

  test('token for another audience is rejected', async () => {
    const token = await entra.issueToken('writer-app', 'https://other.fhir.azurehealthcareapis.com');
    const bad = await ahdsClient(ahds, token);
    const res = await bad.request('GET', '/Patient/p-none');
    expect(res.status).toBe(401);
    expect(res.body.issue[0].code).toBe('login');
  });

  test('a token not signed by the Entra stand-in is rejected', async () => {
    const other = await startEntraStandIn({ tenantId: entra.tenantId, clients: [{ clientId: 'writer-app', clientSecret: 'x' }] });
    try {
      const forged = await ahdsClient(ahds, await other.issueToken('writer-app', ahds.audience));
      expect((await forged.request('GET', '/Patient/p-none')).status).toBe(401);
    } finally {
      await other.close();
    }
  });

  test('an expired token is rejected', async () => {
    const expired = await ahdsClient(ahds, await entra.issueToken('writer-app', ahds.audience, -60));
    expect((await expired.request('GET', '/Patient/p-none')).status).toBe(401);
  });

  test('a client without the FHIR Data Writer role gets 403 forbidden on writes but can read', async () => {
    await c.put(patient('p-ro'));
    const reader = await ahdsClient(ahds, await tokenFor(ahds, { clientId: 'reader-app', clientSecret: 'r-secret' }));
    const put = await reader.put(patient('p-ro', 'Changed'));
    expect(put.status).toBe(403);
    expect(put.body.issue[0].code).toBe('forbidden');
    expect((await reader.request('DELETE', '/Patient/p-ro')).status).toBe(403);
    expect((await reader.request('GET', '/Patient/p-ro')).status).toBe(200);
    expect(ahds.versionCount('Patient', 'p-ro')).toBe(1);
  });

  test('every error OperationOutcome has id = the correlation id (x-request-id)', async () => {
    const res = await c.request('GET', '/Patient/does-not-exist');
    expect(res.body.id).toMatch(GUID);
    expect(res.headers.get('x-request-id')).toBe(res.body.id);
    const other = await c.request('GET', '/Patient/does-not-exist');
    expect(other.body.id).not.toBe(res.body.id);
  });

  test('faults tokenLifetimeSeconds of the server shortens tokens of the Entra stand-in it was given', async () => {
    ahds.faults.configure({ tokenLifetimeSeconds: 20 });
    try {
      const res = await fetch(entra.tokenEndpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: 'writer-app',
          client_secret: 'w-secret',
          scope: `${ahds.audience}/.default`,
        }).toString(),
      });
      expect(((await res.json()) as { expires_in: number }).expires_in).toBe(20);
    } finally {
      ahds.faults.configure({});
    }
  });

  // ------------------------------------------------------------------ PUT

  test('PUT of a new resource answers 201 with ETag W/"1", Last-Modified and Location', async () => {
    const res = await c.put(patient('p-new'));
    expect(res.status).toBe(201);
    expect(res.headers.get('etag')).toBe('W/"1"');
    expect(new Date(res.headers.get('last-modified')!).getTime()).not.toBeNaN();
    expect(res.headers.get('location')).toBe(`${ahds.fhirUrl}/Patient/p-new/_history/1`);
    expect(res.headers.get('content-type')).toBe('application/fhir+json; charset=utf-8');
    expect(res.body).toMatchObject({ resourceType: 'Patient', id: 'p-new', meta: { versionId: '1' } });
    expect(res.body.name).toEqual((patient('p-new') as any).name);
  });

  // fhir-server FhirController.ToSaveOutcomeResult: Location only with 201.
  test('PUT of a changed resource answers 200 with version 2 and no Location', async () => {
    await c.put(patient('p-upd'));
    const res = await c.put(patient('p-upd', 'Jones'));
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).toBe('W/"2"');
    expect(res.headers.get('location')).toBeNull();
    expect(res.body.meta.versionId).toBe('2');
    expect(res.body.name[0].family).toBe('Jones');
  });

  test('PUT identical apart from meta creates no new version', async () => {
    const first = await c.put(patient('p-same'));
    const again = await c.put({
      ...patient('p-same'),
      meta: { versionId: '17', lastUpdated: '2001-01-01T00:00:00Z' },
    } as any);
    expect(again.status).toBe(200);
    expect(again.headers.get('etag')).toBe('W/"1"');
    expect(again.body.meta.versionId).toBe('1');
    expect(again.body.meta.lastUpdated).toBe(first.body.meta.lastUpdated);
    expect(ahds.versionCount('Patient', 'p-same')).toBe(1);
  });

  test('PUT with the same content in a different key order creates no new version', async () => {
    await c.put(patient('p-order'));
    const reordered = {
      birthDate: '1980-02-03',
      gender: 'female',
      name: [{ given: ['Ann'], family: 'Smith' }],
      id: 'p-order',
      resourceType: 'Patient',
    };
    const res = await c.put(reordered as any);
    expect(res.status).toBe(200);
    expect(res.body.meta.versionId).toBe('1');
  });

  test('the server sets meta.versionId and meta.lastUpdated, overwriting client values', async () => {
    const before = Date.now();
    const res = await c.put({
      ...patient('p-meta'),
      meta: { versionId: 'abc', lastUpdated: '1999-01-01T00:00:00Z', source: 'openemr' },
    } as any);
    expect(res.status).toBe(201);
    expect(res.body.meta.versionId).toBe('1');
    expect(Date.parse(res.body.meta.lastUpdated)).toBeGreaterThanOrEqual(before - 1000);
    expect(res.body.meta.source).toBe('openemr');
  });

  test('a changed meta.tag counts as a change (new version)', async () => {
    await c.put({ ...patient('p-tag'), meta: { tag: [{ system: 'urn:t', code: 'a' }] } } as any);
    const res = await c.put({ ...patient('p-tag'), meta: { tag: [{ system: 'urn:t', code: 'b' }] } } as any);
    expect(res.body.meta.versionId).toBe('2');
  });

  test('body without id is rejected with 400', async () => {
    const { id: _id, ...noId } = patient('p-x') as any;
    const res = await c.request('PUT', '/Patient/p-x', noId);
    expect(res.status).toBe(400);
    expect(res.body.issue[0].diagnostics).toBe('Id must be specified in the resource.');
  });

  test('body id different from URL id is rejected with 400', async () => {
    const res = await c.request('PUT', '/Patient/p-y', patient('p-z'));
    expect(res.status).toBe(400);
    expect(res.body.issue[0].diagnostics).toBe('Id in the URL must match id in the resource.');
    expect(ahds.versionCount('Patient', 'p-y') + ahds.versionCount('Patient', 'p-z')).toBe(0);
  });

  test('id comparison is case-sensitive', async () => {
    const res = await c.request('PUT', '/Patient/abc', patient('ABC'));
    expect(res.status).toBe(400);
    expect(res.body.issue[0].diagnostics).toBe('Id in the URL must match id in the resource.');
  });

  test('resourceType different from the URL type is rejected with 400', async () => {
    const res = await c.request('PUT', '/Observation/p-q', patient('p-q'));
    expect(res.status).toBe(400);
    expect(res.body.issue[0].code).toBe('invalid');
  });

  test('an invalid resource is rejected by the FHIR validator with 400 invalid', async () => {
    const { code: _code, ...noCode } = observation('o-bad', 'p-new') as any;
    const res = await c.request('PUT', '/Observation/o-bad', noCode);
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].code).toBe('invalid');
    expect(res.body.issue[0].diagnostics).toBe('Element with minimum cardinality 1 cannot be null. At Observation.code.');
    expect(ahds.versionCount('Observation', 'o-bad')).toBe(0);
  });

  // Firely's permissive parser reports unknown elements (fhir-server FhirJsonInputFormatter).
  test('an unknown property is a parse error (400)', async () => {
    const res = await c.put({ ...patient('p-prop'), favouriteColour: 'blue' } as any);
    expect(res.status).toBe(400);
    expect(res.body.issue[0].diagnostics).toContain('unknown element');
  });

  test('a wrongly typed value is rejected by the FHIR validator', async () => {
    const res = await c.put({ ...patient('p-type'), birthDate: 'yesterday' } as any);
    expect(res.status).toBe(400);
    expect(res.body.issue[0].code).toBe('invalid');
  });

  test('two forms of one choice element are a parse error (Medplum only warns), in components too', async () => {
    const doubled = { ...observation('o-double', 'p-new'), valueString: 'x', valueBoolean: true } as any;
    const res = await c.request('PUT', '/Observation/o-double', doubled);
    expect(res.status).toBe(400);
    expect(res.body.issue[0].code).toBe('invalid');
    expect(res.body.issue[0].diagnostics).toContain('Choice element has more than one type');
    const inComponent = {
      ...observation('o-double-c', 'p-new'),
      component: [{ code: { text: 'c' }, valueString: 'x', valueInteger: 1 }],
    } as any;
    expect((await c.request('PUT', '/Observation/o-double-c', inComponent)).status).toBe(400);
    expect(ahds.versionCount('Observation', 'o-double')).toBe(0);
    expect(ahds.versionCount('Observation', 'o-double-c')).toBe(0);
  });

  test('referential integrity is not enforced: an Observation whose subject is missing is stored', async () => {
    const res = await c.put(observation('o-orphan', 'no-such-patient'));
    expect(res.status).toBe(201);
    expect((await c.request('GET', '/Patient/no-such-patient')).status).toBe(404);
  });

  test('If-Match with a stale version answers 412', async () => {
    await c.put(patient('p-if'));
    await c.put(patient('p-if', 'Two'));
    const stale = await c.put(patient('p-if', 'Three'), { 'if-match': 'W/"1"' });
    expect(stale.status).toBe(412);
    const current = await c.put(patient('p-if', 'Three'), { 'if-match': 'W/"2"' });
    expect(current.status).toBe(200);
    expect(current.body.meta.versionId).toBe('3');
  });

  test('an unknown resource type is answered 404 not-supported', async () => {
    const res = await c.request('GET', '/Spaceship/1');
    expect(res.status).toBe(404);
    expect(res.body.issue[0].code).toBe('not-supported');
  });

  test('a body that is not JSON is rejected with 400', async () => {
    const res = await c.request('PUT', '/Patient/p-json', '{not json');
    expect(res.status).toBe(400);
  });

  // ------------------------------------------------------------------ read, delete, history

  test('GET returns the stored resource with ETag', async () => {
    await c.put(patient('p-read'));
    const res = await c.request('GET', '/Patient/p-read');
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).toBe('W/"1"');
    expect(res.body).toMatchObject({ resourceType: 'Patient', id: 'p-read', meta: { versionId: '1' } });
  });

  test('GET of a missing resource answers 404 not-found OperationOutcome', async () => {
    const res = await c.request('GET', '/Patient/never');
    expect(res.status).toBe(404);
    expect(res.body.issue[0].code).toBe('not-found');
  });

  // SqlServerFhirDataStore: Created only when the new version is 1, so a revival is 200.
  test('DELETE is a soft delete: 204, then GET answers 410, and a new PUT answers 200 continuing the version count', async () => {
    await c.put(patient('p-del'));
    const del = await c.request('DELETE', '/Patient/p-del');
    expect(del.status).toBe(204);
    expect(del.headers.get('etag')).toBe('W/"2"');
    expect((await c.request('GET', '/Patient/p-del')).status).toBe(410);
    expect(await ahds.read('Patient', 'p-del')).toBeUndefined();
    const again = await c.put(patient('p-del'));
    expect(again.status).toBe(200);
    expect(again.body.meta.versionId).toBe('3');
  });

  test('DELETE of a missing resource answers 204', async () => {
    expect((await c.request('DELETE', '/Patient/never-there')).status).toBe(204);
  });

  test('_history lists every version, newest first, deletes included', async () => {
    await c.put(patient('p-hist'));
    await c.put(patient('p-hist', 'B'));
    await c.request('DELETE', '/Patient/p-hist');
    const res = await c.request('GET', '/Patient/p-hist/_history');
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('history');
    expect(res.body.entry.map((e: any) => e.response.etag)).toEqual(['W/"3"', 'W/"2"', 'W/"1"']);
    expect(res.body.entry[0].request.method).toBe('DELETE');
    expect(res.body.entry[1].resource.name[0].family).toBe('B');
    const v1 = await c.request('GET', '/Patient/p-hist/_history/1');
    expect(v1.body.name[0].family).toBe('Smith');
  });

  test('POST /Type creates with a server-assigned id', async () => {
    const { id: _id, ...body } = patient('ignored') as any;
    const res = await c.request('POST', '/Patient', body);
    expect(res.status).toBe(201);
    expect(res.body.id).toMatch(GUID);
    expect(res.headers.get('location')).toBe(`${ahds.fhirUrl}/Patient/${res.body.id}/_history/1`);
  });

  // ------------------------------------------------------------------ helpers of the handle

  test('snapshot, read and versionCount reflect the store', async () => {
    await c.put(observation('o-snap', 'p-new'));
    const all = await ahds.snapshot();
    const keys = all.map((r) => `${r.resourceType}/${r.id}`);
    const byTypeThenId = (a: string, b: string): number => {
      const [ta, ia] = a.split('/');
      const [tb, ib] = b.split('/');
      return ta !== tb ? (ta < tb ? -1 : 1) : ia < ib ? -1 : ia > ib ? 1 : 0;
    };
    expect(keys).toEqual([...keys].sort(byTypeThenId));
    expect(keys).toContain('Observation/o-snap');
    expect(keys).not.toContain('Patient/p-del-gone');
    expect((await ahds.snapshot('Observation')).every((r) => r.resourceType === 'Observation')).toBe(true);
    expect((await ahds.read('Observation', 'o-snap'))?.meta?.versionId).toBe('1');
    expect(ahds.versionCount('Observation', 'o-snap')).toBe(1);
    expect(ahds.versionCount('Observation', 'nope')).toBe(0);
  });

  test('stats count requests, writes, versions created and statuses', async () => {
    ahds.resetStats();
    await c.put(patient('p-stats'));
    await c.put(patient('p-stats'));
    await c.put(patient('p-stats', 'New'));
    await c.request('GET', '/Patient/nothing');
    expect(ahds.stats()).toMatchObject({
      requests: 4,
      writes: 3,
      versionsCreated: 2,
      noopWrites: 1,
      byStatus: { '201': 1, '200': 2, '404': 1 },
    });
  });
});

describe('AHDS FHIR stand-in: search', () => {
  let ahds: AhdsStandIn;
  let c: AhdsTestClient;
  const ids = Array.from({ length: 25 }, (_, i) => `s${String(i).padStart(2, '0')}`);
  let middle: string;
  beforeAll(async () => {
    ahds = await startAhdsStandIn();
    c = await ahdsClient(ahds);
    for (const [i, id] of ids.entries()) {
      await c.put(patient(id));
      if (i === 11) {
        await new Promise((r) => setTimeout(r, 5));
        middle = new Date().toISOString();
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    await c.put(observation('obs-1', 's00'));
    await c.put(observation('obs-2', 's01'));
  });
  afterAll(() => ahds.close());

  async function pageAll(url: string): Promise<{ ids: string[]; pages: number }> {
    const seen: string[] = [];
    let pages = 0;
    let next: string | undefined = url;
    while (next) {
      const res: any = await c.request('GET', next);
      expect(res.status).toBe(200);
      pages++;
      for (const e of res.body.entry ?? []) if (e.search?.mode === 'match') seen.push(e.resource.id);
      next = res.body.link?.find((l: any) => l.relation === 'next')?.url;
    }
    return { ids: seen, pages };
  }

  test('search pages by next links and _summary=count counts', async () => {
    const count = await c.request('GET', '/Patient?_summary=count');
    expect(count.body).toMatchObject({ resourceType: 'Bundle', type: 'searchset', total: 25 });
    expect(count.body.entry).toBeUndefined();
    const { ids: seen, pages } = await pageAll('/Patient?_count=10');
    expect(pages).toBe(3);
    expect(seen).toEqual(ids);
  });

  test('continuation tokens are opaque ct= parameters in next links', async () => {
    const res = await c.request('GET', '/Patient?_count=5');
    const next = res.body.link.find((l: any) => l.relation === 'next').url as string;
    expect(next.startsWith(`${ahds.fhirUrl}/Patient?`)).toBe(true);
    expect(new URL(next).searchParams.get('ct')).toBeTruthy();
  });

  test('_count defaults to 10', async () => {
    const res = await c.request('GET', '/Patient');
    expect(res.body.entry).toHaveLength(10);
    expect(res.body.link.some((l: any) => l.relation === 'next')).toBe(true);
  });

  test('_total=accurate adds the total to each page', async () => {
    const res = await c.request('GET', '/Patient?_count=2&_total=accurate');
    expect(res.body.total).toBe(25);
    expect(res.body.entry).toHaveLength(2);
    expect((await c.request('GET', '/Patient?_count=2')).body.total).toBeUndefined();
  });

  test('_lastUpdated prefixes select by time', async () => {
    const after = await pageAll(`/Patient?_lastUpdated=${encodeURIComponent(`gt${middle}`)}&_count=100`);
    expect(after.ids).toEqual(ids.slice(12));
    const before = await pageAll(`/Patient?_lastUpdated=lt${middle}&_count=100`);
    expect(before.ids).toEqual(ids.slice(0, 12));
    const both = await c.request('GET', `/Patient?_lastUpdated=ge${middle}&_lastUpdated=le2999-01-01&_summary=count`);
    expect(both.body.total).toBe(13);
    const day = await c.request('GET', `/Patient?_lastUpdated=${middle.slice(0, 10)}&_summary=count`);
    expect(day.body.total).toBeGreaterThanOrEqual(12);
  });

  test('_sort=-_lastUpdated returns the newest first and pages in that order', async () => {
    const { ids: seen } = await pageAll('/Patient?_sort=-_lastUpdated&_count=7');
    expect(seen).toEqual([...ids].reverse());
    const asc = await pageAll('/Patient?_sort=_lastUpdated&_count=7');
    expect(asc.ids).toEqual(ids);
  });

  test('updates move a resource to the end of _lastUpdated order', async () => {
    await c.put(patient('s03', 'Moved'));
    const { ids: seen } = await pageAll('/Patient?_sort=_lastUpdated&_count=100');
    expect(seen[seen.length - 1]).toBe('s03');
    expect(seen).toHaveLength(25);
    await c.put(patient('s03')); // new version again, content back to the original
  });

  test('_id selects resources by id', async () => {
    const res = await c.request('GET', '/Patient?_id=s01,s04,nope');
    expect(res.body.entry.map((e: any) => e.resource.id).sort()).toEqual(['s01', 's04']);
  });

  test('_elements returns a SUBSETTED subset', async () => {
    const res = await c.request('GET', '/Patient?_id=s02&_elements=gender');
    const r = res.body.entry[0].resource;
    expect(r.gender).toBe('female');
    expect(r.name).toBeUndefined();
    expect(r.meta.tag).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'SUBSETTED' })]));
  });

  test('R4 search parameters of the type are matched (Observation?subject=)', async () => {
    const res = await c.request('GET', '/Observation?subject=Patient/s01');
    expect(res.body.entry.map((e: any) => e.resource.id)).toEqual(['obs-2']);
  });

  test('an unknown search parameter is ignored with a warning outcome entry', async () => {
    const res = await c.request('GET', '/Observation?colour=blue');
    const matches = res.body.entry.filter((e: any) => e.search.mode === 'match');
    const outcome = res.body.entry.find((e: any) => e.search.mode === 'outcome');
    expect(matches).toHaveLength(2);
    expect(outcome.resource.issue[0].severity).toBe('warning');
  });

  test('deleted resources are not found by search', async () => {
    await c.put(patient('gone'));
    await c.request('DELETE', '/Patient/gone');
    const res = await c.request('GET', '/Patient?_id=gone');
    expect(res.body.entry).toBeUndefined();
    expect((await c.request('GET', '/Patient?_summary=count')).body.total).toBe(25);
  });
});
