import { SEARCH_PARAMS, SUPPORTED_TYPES } from '../../stack/openemr/standin-types';
import { RESOURCE_TYPES } from '../../src/sync/resource-types';

/**
 * The connector's table (src/sync/resource-types.ts) and the OpenEMR stand-in (stack/openemr/standin-types.ts)
 * each list, per type, the search parameters OpenEMR's loadSearchParameters accepts. They are kept
 * apart on purpose (the stand-in models OpenEMR, the table is what the connector believes), so they
 * must not drift apart: any other parameter empties OpenEMR's answer.
 */
const standIn: Record<string, readonly string[]> = SEARCH_PARAMS;

test('the table and the stand-in list the same types', () => {
  expect(RESOURCE_TYPES.map((t) => t.type).sort()).toEqual([...SUPPORTED_TYPES].sort());
});

test.each(RESOURCE_TYPES.map((t) => [t.type, t.read.searchParams] as const))(
  "%s: the table's search parameters are the stand-in's",
  (type, params) => {
    expect(standIn[type]).toBeDefined();
    expect([...params].sort()).toEqual([...standIn[type]!].sort());
  },
);
