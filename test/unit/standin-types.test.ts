/**
 * The OpenEMR stand-in's one list of types (stack/openemr/standin-types.ts) and what is derived from
 * it: a type in the list is routed, searchable, loadable and grantable with no other edit.
 */
import { DEFAULT_CLIENT_SCOPES } from '../../stack/openemr';
import { capabilityStatement, SUPPORTED_SCOPES } from '../../stack/openemr/discovery';
import { matchRoute } from '../../stack/openemr/route-table';
import {
  PATIENT_SCOPED_TYPES,
  SEARCH_PARAMS,
  STANDIN_TYPES,
  SUPPORTED_TYPES,
  TYPES_IN_ROUTE_ORDER,
} from '../../stack/openemr/standin-types';
import { RESOURCE_TYPES } from '../../src/sync/resource-types';

const fhirPath = (...rest: string[]) => ['apis', 'default', 'fhir', ...rest];

test.each(SUPPORTED_TYPES)('%s has a search and a read route naming the type', (type) => {
  expect(matchRoute('GET', fhirPath(type), 'default')).toEqual({ name: `GET /fhir/${type}`, type, fhir: true });
  expect(matchRoute('GET', fhirPath(type, 'abc'), 'default')).toEqual({ name: `GET /fhir/${type}/{id}`, id: 'abc', type, fhir: true });
  expect(matchRoute('POST', fhirPath(type), 'default').name).toBe('unmatched');
});

test('the export routes are not taken for type routes, and an unserved type is unmatched', () => {
  expect(matchRoute('GET', fhirPath('Patient', '$export'), 'default')).toEqual({ name: 'GET /fhir/Patient/$export', fhir: true });
  expect(matchRoute('GET', fhirPath('Binary', '7'), 'default')).toEqual({ name: 'GET /fhir/Binary/{id}', id: '7', fhir: true });
  expect(matchRoute('GET', fhirPath('Claim'), 'default').name).toBe('unmatched');
});

test('every type has its read and rs scopes known and granted to the default client', () => {
  for (const type of SUPPORTED_TYPES) {
    expect(SUPPORTED_SCOPES).toEqual(expect.arrayContaining([`system/${type}.read`, `system/${type}.rs`]));
    expect(DEFAULT_CLIENT_SCOPES.split(' ')).toEqual(expect.arrayContaining([`system/${type}.read`, `system/${type}.rs`]));
  }
  expect(new Set(SUPPORTED_SCOPES).size).toBe(SUPPORTED_SCOPES.length);
});

test('the CapabilityStatement lists every type with its search parameters', () => {
  const endpoints = { baseUrl: 'http://x', site: 'default', tokenUrl: 'http://x/t', fhirBaseUrl: 'http://x/f', scopes: [] };
  const rest = (capabilityStatement(endpoints, '2026-01-01', '7.0.4') as any).rest[0];
  const listed = Object.fromEntries(rest.resource.map((r: any) => [r.type, r.searchParam.map((p: any) => p.name)]));
  expect(listed).toEqual(SEARCH_PARAMS);
});

test("patient-scoped types are the connector table's patient-scoped ones", () => {
  const scopedInTable = RESOURCE_TYPES.filter((t) => t.read.patientScoped && t.type !== 'Patient').map((t) => t.type);
  expect([...PATIENT_SCOPED_TYPES].sort()).toEqual(scopedInTable.sort());
});

test('the list is in reference order: every reference of the connector table points at a type listed before', () => {
  const position = (type: string) => SUPPORTED_TYPES.indexOf(type as never);
  const backwards = RESOURCE_TYPES.flatMap((t) =>
    t.references.filter((r) => r.type !== t.type && position(r.type) >= position(t.type)).map((r) => `${t.type}.${r.element} -> ${r.type}`),
  );
  expect(backwards).toEqual([]);
});

test("the export order is OpenEMR's route order (apis/routes/_rest_routes_fhir_r4_us_core_3_1_0.inc.php): Observation before Patient", () => {
  expect(TYPES_IN_ROUTE_ORDER).toHaveLength(STANDIN_TYPES.length);
  expect(TYPES_IN_ROUTE_ORDER.indexOf('Observation')).toBeLessThan(TYPES_IN_ROUTE_ORDER.indexOf('Patient'));
  // The route file lists these types alphabetically.
  expect(TYPES_IN_ROUTE_ORDER).toEqual([...SUPPORTED_TYPES].sort());
});
