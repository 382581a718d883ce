/**
 * Validation parity for the directory types: the connector's check (src/mapping/validate.ts, AHDS
 * rules over the shipped Practitioner, Organization and Location definitions) and the AHDS
 * stand-in's engine agree on every directory resource OpenEMR serves (data/openemr-directory, with
 * the address period OpenEMR invents) and on broken variants of them; what the mapper writes passes both.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Resource } from '@medplum/fhirtypes';
import { createResourceMapper } from '../../src/mapping';
import { validationFailure } from '../../src/mapping/validate';
import type { SyncedResource } from '../../src/fhir/types';
import { validate as standInRefuses } from '../../stack/ahds/engine';
import { defaultDirectoryDir } from '../../stack/openemr';
import { DEFAULT_OPTIONS } from '../fixtures/mapping/load';

type Json = Record<string, any>;
const served: Json[] = ['Organization', 'Practitioner', 'Location'].flatMap((type) =>
  fs
    .readFileSync(path.join(defaultDirectoryDir(), `${type}.ndjson`), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const r = JSON.parse(l) as Json;
      // As OpenEMR serves them: createAddressFromRecord's invented period.
      if (type !== 'Practitioner' && r.address)
        for (const a of Array.isArray(r.address) ? r.address : [r.address]) a.period = { start: '2025-12-02T09:00:00.123-05:00' };
      return r;
    }),
);

/** Broken variants a real OpenEMR row can give: an unknown element, a wrong primitive, an empty name, a bad status. */
function variants(r: Json): Json[] {
  return [
    { ...r, unknownElement: true },
    { ...r, active: 'yes' },
    { ...r, name: r.resourceType === 'Practitioner' ? [{}] : '' },
    ...(r.resourceType === 'Location' ? [{ ...r, status: 'open' }] : []),
    { ...r, telecom: [{ system: 'pager', value: '1' }] },
  ];
}

test('the connector and the AHDS stand-in agree on every served directory resource and its broken variants', () => {
  const disagree: string[] = [];
  let refused = 0;
  for (const r of served.flatMap((s) => [s, ...variants(s)])) {
    const ours = validationFailure(r as Resource) !== undefined;
    const theirs = standInRefuses(r as Resource) !== null;
    if (theirs) refused++;
    if (ours !== theirs)
      disagree.push(`${r.resourceType}/${r.id}: connector ${ours ? 'refuses' : 'accepts'}, AHDS ${theirs ? 'refuses' : 'accepts'}`);
  }
  expect(disagree).toEqual([]);
  expect(refused).toBeGreaterThanOrEqual(served.length * 2);
});

test('every directory resource the mapper writes passes the AHDS stand-in', () => {
  const mapper = createResourceMapper({ ...DEFAULT_OPTIONS, carriedTypes: ['Patient', 'Organization', 'Practitioner', 'Location'] });
  const refused: string[] = [];
  for (const r of served) {
    const outcome = mapper.map(r as SyncedResource);
    if (!outcome.ok) refused.push(`${r.resourceType}/${r.id}: ${outcome.reason}`);
    else if (standInRefuses(outcome.resource as Resource)) refused.push(`${r.resourceType}/${r.id}: AHDS stand-in refuses`);
  }
  expect(refused).toEqual([]);
});
