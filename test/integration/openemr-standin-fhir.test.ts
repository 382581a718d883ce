/**
 * OpenEMR stand-in, FHIR read and search over the default synthea-dev data (read-only here:
 * stateful behaviour lives in openemr-standin-control.test.ts). Expectations are computed from the
 * NDJSON source, not from the stand-in, so the stand-in cannot agree with itself by accident.
 */
import fs from 'node:fs';
import path from 'node:path';
import { OpenEmrStandIn, startOpenEmrStandIn } from '../../stack/openemr';
import { entryIds, fhirGet, getAccessToken } from '../helpers/openemr-standin-client';

const DATA = path.resolve(__dirname, '../..', 'data/synthea-dev');
type Json = Record<string, any>;
const readNdjson = (file: string): Json[] =>
  fs
    .readFileSync(path.join(DATA, file), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Json);
const sourcePatients = readNdjson('Patient.ndjson');
const sourceObservations = readNdjson('Observation.ndjson');
const seconds = (iso: string) => Math.floor(Date.parse(iso) / 1000);
const subjectId = (o: Json) => (o.subject.reference as string).replace('urn:uuid:', '');
const hasCategory = (o: Json, code: string) => o.category.some((c: Json) => c.coding.some((x: Json) => x.code === code));

let openemr: OpenEmrStandIn;
let token: string;

beforeAll(async () => {
  openemr = await startOpenEmrStandIn(); // default data directory
  token = await getAccessToken(openemr);
});
afterAll(async () => {
  await openemr.close();
});

const get = (p: string) => fhirGet(openemr, p, token);

describe('data load', () => {
  test('the default data directory loads all 20 Patients, their Observations, Encounters, Conditions, Immunizations, Procedures, MedicationRequests, DiagnosticReports, DocumentReferences, the AllergyIntolerance sample and the directory beside it', () => {
    expect(openemr.loadReport?.loaded).toEqual({
      // data/openemr-directory: a practitioner and a facility per distinct provider of the Encounters;
      // Locations are the 36 facilities, the 36 users' and the 20 Patients' "Home Address" rows.
      Practitioner: 36,
      Organization: 36,
      Location: 36 + 36 + 20,
      Patient: 20,
      Observation: 3576,
      Encounter: 968,
      Condition: 23,
      Immunization: 1038,
      Procedure: 19,
      MedicationRequest: 11,
      AllergyIntolerance: 15,
      DiagnosticReport: 968,
      DocumentReference: 968,
    });
    expect(openemr.store.count('Observation')).toBe(sourceObservations.length);
  });

  test('urn:uuid references are resolved to Patient/<id> and Encounter/<id>', async () => {
    const source = sourceObservations[0];
    const res = await get(`/Observation/${source.id}`);
    expect(res.body.subject).toEqual({ reference: `Patient/${subjectId(source)}` });
    expect(res.body.encounter).toEqual({ reference: `Encounter/${(source.encounter.reference as string).replace('urn:uuid:', '')}` });
    expect(res.text).not.toContain('urn:uuid:');
  });

  test('loaded Observations take lastUpdated from issued, at one-second precision in the server offset', async () => {
    const source = sourceObservations[0]; // issued 2016-09-13T06:53:25.410+00:00
    expect(source.issued).toBe('2016-09-13T06:53:25.410+00:00');
    const res = await get(`/Observation/${source.id}`);
    expect(res.body.meta).toEqual({ versionId: '1', lastUpdated: '2016-09-13T01:53:25-05:00' });
  });

  test('loaded Patients share the fixed load epoch as lastUpdated and keep their meta.profile', async () => {
    const res = await get(`/Patient/${sourcePatients[0].id}`);
    expect(res.body.meta).toEqual({ versionId: '1', lastUpdated: '2025-01-01T00:00:00-05:00', profile: sourcePatients[0].meta.profile });
  });

  test('served resources keep the source key order with meta placed after id', async () => {
    const source = sourceObservations[0];
    const res = await get(`/Observation/${source.id}`);
    const expected = Object.keys(source).flatMap((k) => (k === 'id' ? ['id', 'meta'] : [k]));
    expect(Object.keys(res.body)).toEqual(expected);
  });
});

describe('read', () => {
  test('read returns the resource as application/json', async () => {
    const res = await get(`/Patient/${sourcePatients[0].id}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.body.resourceType).toBe('Patient');
    expect(res.body.name).toEqual(sourcePatients[0].name);
  });

  test('unknown id returns 404 with body []', async () => {
    const res = await get('/Observation/00000000-0000-4000-8000-000000000000');
    expect(res.status).toBe(404);
    expect(res.text).toBe('[]');
  });

  test('a non-UUID id on read returns 400 with validationErrors', async () => {
    const res = await get('/Patient/12345');
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      validationErrors: {
        _id: 'The search field argument was invalid, improperly formatted, or could not be parsed.  Inner message: UUID columns must be a valid UUID string',
      },
    });
  });

  test('an unknown resource type returns 404 Route not found', async () => {
    const res = await get('/Flag');
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: 'An error occurred', message: 'Route not found', code: 0 });
  });
});

describe('search bundles', () => {
  test('a search answers a collection Bundle with only a self link and a naive local meta.lastUpdated', async () => {
    const res = await get('/Observation?_count=1');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.body.resourceType).toBe('Bundle');
    expect(res.body.type).toBe('collection');
    expect(res.body.meta.lastUpdated).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
    expect(res.body.link).toEqual([{ relation: 'self', url: `${openemr.fhirBaseUrl}/Observation` }]);
    const entry = res.body.entry[0];
    expect(entry.fullUrl).toBe(`${openemr.fhirBaseUrl}/Observation/${entry.resource.id}`);
  });

  test('total counts only the entries returned', async () => {
    const res = await get('/Patient?_count=5');
    expect(res.body.total).toBe(5);
    expect(res.body.entry).toHaveLength(5);
  });

  test('an empty result has total 0 and no entry array', async () => {
    const res = await get('/Patient?_id=00000000-0000-4000-8000-000000000000');
    expect(res.body.total).toBe(0);
    expect(res.body.entry).toBeUndefined();
  });
});

describe('Patient search', () => {
  // PatientService.php:493-497 (ORDER BY the mapped column only), SearchConfigClauseBuilder.php:58
  // (LIMIT offset, count+1): no unique tie-break, so equal seconds come in row order, not id order.
  test('Patient _sort=_lastUpdated has no id tie-break: equal seconds come in row order', async () => {
    const pages: string[][] = [];
    for (let offset = 0; offset < 21; offset += 7) {
      const res = await get(`/Patient?_count=7&_offset=${offset}&_sort=_lastUpdated`);
      expect(res.body.link.map((l: Json) => l.relation)).toEqual(['self']);
      pages.push(entryIds(res.body));
    }
    expect(pages.map((p) => p.length)).toEqual([7, 7, 6]);
    // All loaded Patients share one lastUpdated second: the load (row) order decides.
    const rowOrder = sourcePatients.map((p) => p.id as string);
    expect(pages.flat()).toEqual(rowOrder);
    expect(rowOrder).not.toEqual([...rowOrder].sort());
  });

  test('Patient _sort=-_lastUpdated sorts descending with equal seconds still in row order', async () => {
    const res = await get('/Patient?_sort=-_lastUpdated');
    expect(entryIds(res.body)).toEqual(sourcePatients.map((p) => p.id as string));
  });

  // ResourceServiceSearchTrait::createSortParameter keeps only fields the factory knows.
  test('an unknown _sort field is ignored, not an empty answer', async () => {
    const res = await get('/Patient?_sort=nonsense');
    expect(res.body.total).toBe(20);
  });

  // SearchQueryConfig.php:52 intval($_count); SearchConfigClauseBuilder adds LIMIT only when > 0.
  test('_count=abc means no limit', async () => {
    expect((await get('/Patient?_count=abc')).body.total).toBe(20);
    expect((await get('/Patient?_count=0')).body.total).toBe(20);
    expect((await get('/Patient?_count=5abc')).body.total).toBe(5);
  });

  test('without _count Patient search returns every match', async () => {
    const res = await get('/Patient');
    expect(res.body.total).toBe(20);
  });

  test('_id accepts a comma-separated list', async () => {
    const ids = [sourcePatients[3].id, sourcePatients[5].id];
    const res = await get(`/Patient?_id=${ids.join(',')}`);
    expect(entryIds(res.body).sort()).toEqual([...ids].sort());
  });

  test('identifier search finds a Patient by SSN (OpenEMR exposes it)', async () => {
    const ssn = sourcePatients[0].identifier.find((i: Json) => i.system === 'http://hl7.org/fhir/sid/us-ssn').value;
    const res = await get(`/Patient?identifier=${encodeURIComponent(`http://hl7.org/fhir/sid/us-ssn|${ssn}`)}`);
    expect(entryIds(res.body)).toEqual([sourcePatients[0].id]);
  });

  test('family name search is a case-insensitive prefix match', async () => {
    const family = sourcePatients[0].name[0].family as string;
    const res = await get(`/Patient?family=${family.slice(0, 5).toLowerCase()}`);
    expect(entryIds(res.body)).toContain(sourcePatients[0].id);
  });

  test('_lastUpdated excludes Patients outside the window', async () => {
    expect((await get('/Patient?_lastUpdated=ge2025-01-01T00:00:00-05:00')).body.total).toBe(20);
    expect((await get('/Patient?_lastUpdated=gt2025-01-01T00:00:00-05:00')).body.total).toBe(0);
  });
});

describe('Observation search', () => {
  test('Observation search ignores _offset', async () => {
    const first = await get('/Observation?_count=3&_offset=0');
    const second = await get('/Observation?_count=3&_offset=3');
    expect(entryIds(second.body)).toEqual(entryIds(first.body));
  });

  test('Observation applies _count per sub-service (one per category) and concatenates', async () => {
    const res = await get('/Observation?_count=4');
    expect(res.body.total).toBe(8);
    const categories = res.body.entry.map((e: Json) => e.resource.category[0].coding[0].code);
    expect(categories).toEqual(['survey', 'survey', 'survey', 'survey', 'exam', 'exam', 'exam', 'exam']);
  });

  test('patient=<id> and patient=Patient/<id> give the same Observations', async () => {
    const pid = sourcePatients[0].id as string;
    const expected = sourceObservations
      .filter((o) => subjectId(o) === pid)
      .map((o) => o.id as string)
      .sort();
    const plain = await get(`/Observation?patient=${pid}`);
    const typed = await get(`/Observation?patient=Patient/${pid}`);
    expect(entryIds(plain.body).sort()).toEqual(expected);
    expect(entryIds(typed.body).sort()).toEqual(expected);
  });

  // PHP's $_GET keeps the last of a repeated key (apis/.htaccess -> dispatch.php; HttpRestRequest.php).
  test('a repeated _lastUpdated keeps only its last value: no closed window', async () => {
    const lo = seconds('2016-01-01T00:00:00-05:00');
    const hi = seconds('2017-01-01T00:00:00-05:00');
    const beforeHi = sourceObservations
      .filter((o) => seconds(o.issued) <= hi)
      .map((o) => o.id as string)
      .sort();
    expect(beforeHi.some((id) => seconds(sourceObservations.find((o) => o.id === id)!.issued) <= lo)).toBe(true);
    const res = await get('/Observation?_lastUpdated=gt2016-01-01T00:00:00&_lastUpdated=le2017-01-01T00:00:00');
    expect(entryIds(res.body).sort()).toEqual(beforeHi);
    const reversed = await get('/Observation?_lastUpdated=le2017-01-01T00:00:00&_lastUpdated=gt2016-01-01T00:00:00');
    expect(reversed.body.total).toBe(sourceObservations.filter((o) => seconds(o.issued) > lo).length);
  });

  // BasicSearchField.php:42 ($isAnd false for a list), SearchFieldStatementResolver.php:140 (" OR ").
  test('a _lastUpdated[] array and a comma list are OR-ed, never AND-ed', async () => {
    const lo = seconds('2016-01-01T00:00:00-05:00');
    const hi = seconds('2017-01-01T00:00:00-05:00');
    const either = sourceObservations.filter((o) => seconds(o.issued) >= lo || seconds(o.issued) < hi).length;
    expect(either).toBe(sourceObservations.length);
    const array = await get('/Observation?_lastUpdated[]=ge2016-01-01T00:00:00&_lastUpdated[]=lt2017-01-01T00:00:00');
    expect(array.body.total).toBe(either);
    const comma = await get('/Observation?_lastUpdated=ge2016-01-01T00:00:00,lt2017-01-01T00:00:00');
    expect(comma.body.total).toBe(either);
    const patients = await get('/Patient?_lastUpdated[]=gt2030-01-01T00:00:00&_lastUpdated[]=lt2000-01-01T00:00:00');
    expect(patients.body.total).toBe(0);
  });

  // SearchComparator::ALL_COMPARATORS; SearchFieldStatementResolver.php:95-108 (sa as >, eb as <).
  test('the sa and eb date prefixes are valid', async () => {
    const id = sourceObservations[0].id as string; // issued 2016-09-13T06:53:25Z
    const found = async (value: string) =>
      entryIds((await get(`/Observation?_id=${id}&_lastUpdated=${encodeURIComponent(value)}`)).body).length;
    expect(await found('sa2016-09-13T06:53:24Z')).toBe(1);
    expect(await found('sa2016-09-13T06:53:25Z')).toBe(0);
    expect(await found('eb2016-09-13T06:53:26Z')).toBe(1);
    expect(await found('eb2016-09-13T06:53:25Z')).toBe(0);
  });

  test('date offsets are converted to server local time, compared at one-second precision', async () => {
    const id = sourceObservations[0].id as string; // issued 2016-09-13T06:53:25.410Z
    const found = async (value: string) =>
      entryIds((await get(`/Observation?_id=${id}&_lastUpdated=${encodeURIComponent(value)}`)).body).length;
    expect(await found('eq2016-09-13T06:53:25+00:00')).toBe(1);
    expect(await found('eq2016-09-13T01:53:25')).toBe(1); // no offset: server local (-05:00)
    expect(await found('eq2016-09-13T06:53:25')).toBe(0);
    expect(await found('gt2016-09-13T06:53:25Z')).toBe(0);
    expect(await found('ge2016-09-13T06:53:25Z')).toBe(1);
  });

  test('a time without seconds is invalid and returns an empty bundle', async () => {
    const res = await get('/Observation?_lastUpdated=gt2016-09-13T06:53');
    expect(res.status).toBe(200);
    expect(res.body.total).toBe(0);
  });

  test('an unencoded + in a date offset reads as a space and returns an empty bundle', async () => {
    const res = await get('/Observation?_lastUpdated=ge2016-01-01T00:00:00+00:00');
    expect(res.body.total).toBe(0);
    const encoded = await get(`/Observation?_count=1&_lastUpdated=${encodeURIComponent('ge2016-01-01T00:00:00+00:00')}`);
    expect(encoded.body.total).toBeGreaterThan(0);
  });

  test('code matches system|code and a bare code (local codes are labelled LOINC)', async () => {
    const code = '5089AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    const expected = sourceObservations.filter((o) => o.code.coding.some((c: Json) => c.code === code)).length;
    expect((await get(`/Observation?code=${encodeURIComponent(`http://loinc.org|${code}`)}`)).body.total).toBe(expected);
    expect((await get(`/Observation?code=${code}`)).body.total).toBe(expected);
    expect((await get(`/Observation?code=${encodeURIComponent(`http://snomed.info/sct|${code}`)}`)).body.total).toBe(0);
  });

  test('category filters Observations', async () => {
    const expected = sourceObservations.filter((o) => hasCategory(o, 'exam')).length;
    const res = await get(`/Observation?category=${encodeURIComponent('http://terminology.hl7.org/CodeSystem/observation-category|exam')}`);
    expect(res.body.total).toBe(expected);
  });

  test('date filters on the effective time, and a repeated date keeps only its last value', async () => {
    const lo = seconds('2017-01-01T00:00:00-05:00');
    const hi = seconds('2018-01-01T00:00:00-05:00');
    const inYear = sourceObservations.filter((o) => seconds(o.effectiveDateTime) >= lo && seconds(o.effectiveDateTime) < hi).length;
    expect((await get('/Observation?date=2017')).body.total).toBe(inYear);
    const beforeHi = sourceObservations.filter((o) => seconds(o.effectiveDateTime) < hi).length;
    expect(beforeHi).toBeGreaterThan(inYear);
    expect((await get('/Observation?date=ge2017-01-01&date=lt2018-01-01')).body.total).toBe(beforeHi);
  });
});

describe('invalid searches', () => {
  test('an invalid search parameter returns 200 with an empty bundle', async () => {
    const res = await get('/Observation?foo=bar');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      meta: { lastUpdated: expect.any(String) },
      resourceType: 'Bundle',
      type: 'collection',
      total: 0,
      link: [{ relation: 'self', url: `${openemr.fhirBaseUrl}/Observation` }],
    });
  });

  test.each([
    ['a malformed date', '/Observation?_lastUpdated=gt2016-13-45'],
    ['an approximate date prefix', '/Patient?_lastUpdated=ap2025-01-01'],
    ['a negative _offset', '/Patient?_offset=-1'],
    ['a patient that is not a UUID', '/Observation?patient=42'],
    ['a search _id that is not a UUID', '/Patient?_id=42'],
  ])('%s returns 200 with an empty bundle', async (_label, url) => {
    const res = await get(url);
    expect(res.status).toBe(200);
    expect(res.body.total).toBe(0);
  });
});
