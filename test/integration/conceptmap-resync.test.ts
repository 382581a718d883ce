import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config/load';
import { createConnector } from '../../src/connector';
import { CIEL, LOINC } from '../../src/mapping/codes';
import { startStack, type Stack } from '../../stack';

const CODE_1030 = '1030'.padEnd(36, 'A');

let stack: Stack;
let mapFile: string;
beforeAll(async () => {
  stack = await startStack({ azurite: false });
  mapFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'conceptmap-')), 'extra.json');
  fs.writeFileSync(
    mapFile,
    JSON.stringify({
      resourceType: 'ConceptMap',
      url: 'urn:test:hiv-pcr',
      version: '1',
      name: 'HivPcr',
      status: 'draft',
      group: [
        {
          source: CIEL,
          target: LOINC,
          element: [
            {
              code: CODE_1030,
              target: [
                {
                  code: '44871-2',
                  display: 'HIV 1 proviral DNA [Presence] in Blood by NAA with probe amplification',
                  equivalence: 'equivalent',
                },
              ],
            },
          ],
        },
      ],
    }),
  );
});
afterAll(() => stack?.close());

// About an Observation code (CIEL 1030 in a LOINC slot): Patient and Observation are carried, the
// other types' ConceptMap passes are pinned by test/unit/mapping-types.test.ts.
async function fullSync(settings: Record<string, string> = {}) {
  const connector = await createConnector(
    loadConfig({ ...stack.env, RETRY_BASE_DELAY_MS: '20', SYNC_RESOURCE_TYPES: 'Patient,Observation', ...settings }),
    { state: null },
  );
  return connector.sync.fullSync({ trigger: 'cli' });
}

test('a re-sync after adding a ConceptMap entry updates exactly the affected resources and no others', async () => {
  const first = await fullSync();
  expect(first.failed).toBe(0);
  const total = stack.openemr.store.count('Patient') + stack.openemr.store.count('Observation');
  expect(first.created).toBe(total);
  expect(first.unmapped.some((u) => u.code === CODE_1030)).toBe(true);

  const affected = new Set(
    stack.openemr.store.ids('Observation').filter((id) => JSON.stringify(stack.openemr.store.get('Observation', id)).includes(CODE_1030)),
  );
  expect(affected.size).toBeGreaterThan(0);

  const unchangedAgain = await fullSync();
  expect(unchangedAgain).toMatchObject({ created: 0, updated: 0, unchanged: total, failed: 0 });

  const second = await fullSync({ MAPPING_CONCEPTMAP_FILES: mapFile });
  expect(second).toMatchObject({ created: 0, updated: affected.size, unchanged: total - affected.size, failed: 0 });
  expect(second.unmapped.some((u) => u.code === CODE_1030)).toBe(false);
  for (const id of stack.openemr.store.ids('Observation')) {
    expect([id, stack.ahds.versionCount('Observation', id)]).toEqual([id, affected.has(id) ? 2 : 1]);
  }
  const stored = (await stack.ahds.read('Observation', [...affected][0]!)) as { code: { coding: Array<{ system: string; code: string }> } };
  expect(JSON.stringify(stored)).toContain('44871-2');
});
