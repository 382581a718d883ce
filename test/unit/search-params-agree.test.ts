import { DIRECTORY_SEARCH_PARAMS } from '../../stack/openemr/directory-search';
import { CLINICAL_SEARCH_PARAMS, OBSERVATION_SEARCH_PARAMS, PATIENT_SEARCH_PARAMS } from '../../stack/openemr/fhir-search';
import { REPORT_SEARCH_PARAMS } from '../../stack/openemr/report-types';
import { MEDICAL_SERVICES } from '../../stack/openemr/services/medical';
import { RESOURCE_TYPES } from '../../src/sync/resource-types';

/**
 * The connector's table (src/sync/resource-types.ts) and the OpenEMR stand-in each list, per type,
 * the search parameters OpenEMR's loadSearchParameters accepts. They are kept apart on purpose (the
 * stand-in models OpenEMR, the table is what the connector believes), so they must not drift apart:
 * any other parameter empties OpenEMR's answer.
 */
const standIn: Record<string, readonly string[]> = {
  Patient: PATIENT_SEARCH_PARAMS,
  Observation: OBSERVATION_SEARCH_PARAMS,
  ...CLINICAL_SEARCH_PARAMS,
  ...REPORT_SEARCH_PARAMS,
  ...DIRECTORY_SEARCH_PARAMS,
  ...Object.fromEntries(Object.entries(MEDICAL_SERVICES).map(([type, s]) => [type, s.searchParams])),
};

test.each(RESOURCE_TYPES.map((t) => [t.type, t.read.searchParams] as const))(
  "%s: the table's search parameters are the stand-in's",
  (type, params) => {
    expect(standIn[type]).toBeDefined();
    expect([...params].sort()).toEqual([...standIn[type]!].sort());
  },
);
