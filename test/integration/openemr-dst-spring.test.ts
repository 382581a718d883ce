import { randomUUID } from 'node:crypto';
import { loadConfig } from '../../src/config/load';
import { createConnector, type Connector } from '../../src/connector';
import { MemoryDeadLetterStore } from '../../src/sync/dead-letters';
import { incrementalSync } from '../../src/sync/incremental';
import { startStack, type Stack } from '../../stack';
import { fakeDateOnly, HOUR_MS, nextDstChange, zoneOffsetMinutes } from '../helpers/dst-clock';
import { incrementalSettings, trimSource } from '../helpers/incremental-stack';
import { control, fhirGet, getAccessToken } from '../helpers/openemr-standin-client';

/**
 * The small loss at spring-forward, and the overlap that prevents it (README, "What an incremental
 * run sees"). OpenEMR stores a write's time as local wall-clock DATETIME and converts a search's
 * `_lastUpdated` value to local time with TODAY's offset (UtilsService::getLocalDateAsUTC,
 * src/Services/Utils/UtilsService.php:404-415; interface/globals.php:518 sets the MySQL session zone
 * to `(new DateTime())->format("P")`). Once the zone has sprung forward, the watermark of the last
 * run converts to a wall-clock time one hour later than the one it stood for, so a row written in
 * the hour after that watermark, before the change, compares as older than the window's lower
 * bound: a window that overlaps the last one by less than an hour misses it; SYNC_OVERLAP_SECONDS=3600
 * keeps it inside the next window.
 *
 * Only Date is faked (test/helpers/dst-clock.ts): the whole process moves across the next
 * America/New_York spring-forward as time passes on a deployment.
 */

jest.setTimeout(300_000);

const ZONE = 'America/New_York';
const change = nextDstChange(ZONE, Date.now(), 'forward');

let stack: Stack;
beforeAll(async () => {
  fakeDateOnly(change - 2 * HOUR_MS);
  stack = await startStack({ azurite: true, openemr: { timeZone: ZONE } });
  trimSource(stack, 50);
});
afterAll(async () => {
  await stack?.close();
  jest.useRealTimers();
});

async function connectorWith(overlapSeconds: number): Promise<Connector> {
  const settings = incrementalSettings(stack, {
    SYNC_TABLE_PREFIX: `s${overlapSeconds}${randomUUID().replace(/-/g, '').slice(0, 8)}`,
    SYNC_LAG_SECONDS: '0',
    SYNC_OVERLAP_SECONDS: String(overlapSeconds),
    SYNC_RESOURCE_TYPES: 'Patient,Observation',
  });
  return createConnector(loadConfig(settings), { deadLetters: new MemoryDeadLetterStore() });
}

async function runOnce(connector: Connector) {
  const outcome = await incrementalSync(connector).run({ trigger: 'cli' });
  if (outcome.skipped) throw new Error('skipped');
  return outcome.value;
}

test('a Patient written in the hour before spring-forward is missed by a window overlapping by a minute and caught by one overlapping by an hour', async () => {
  expect(zoneOffsetMinutes(ZONE, change)).toBeGreaterThan(zoneOffsetMinutes(ZONE, change - HOUR_MS));
  const minute = await connectorWith(60);
  const hour = await connectorWith(3600);
  // Both first runs read everything and close their windows at (about) change - 2 h.
  expect(await runOnce(minute)).toMatchObject({ status: 'ok', failed: 0 });
  expect(await runOnce(hour)).toMatchObject({ status: 'ok', failed: 0, created: 0 });

  // Half an hour later, still before the change, a Patient is registered.
  jest.setSystemTime(change - 90 * 60_000);
  const store = stack.openemr.store;
  const id = randomUUID();
  const copy = { ...(store.get('Patient', store.ids('Patient')[0]!) as Record<string, unknown>), id };
  expect((await control(stack.openemr, 'PUT', `/Patient/${id}`, copy)).status).toBe(201);
  const written = (await fhirGet(stack.openemr, `/Patient/${id}`, await getAccessToken(stack.openemr))).body;

  // An hour after the change, the same row is labelled with the new offset: an hour earlier as an instant.
  jest.setSystemTime(change + HOUR_MS);
  const served = (await fhirGet(stack.openemr, `/Patient/${id}`, await getAccessToken(stack.openemr))).body;
  expect(Date.parse(written.meta.lastUpdated) - Date.parse(served.meta.lastUpdated)).toBe(HOUR_MS);

  const missed = await runOnce(minute);
  expect(missed).toMatchObject({ status: 'ok', failed: 0, created: 0 });
  expect(await stack.ahds.read('Patient', id)).toBeUndefined();

  const caught = await runOnce(hour);
  expect(caught).toMatchObject({ status: 'ok', failed: 0, created: 1 });
  expect(await stack.ahds.read('Patient', id)).toMatchObject({ id });
});
