import { randomUUID } from 'node:crypto';
import { loadConfig } from '../../src/config/load';
import { createConnector } from '../../src/connector';
import { contentHash } from '../../src/fhir/canonical';
import type { SyncedResource } from '../../src/fhir/types';
import { MemoryDeadLetterStore } from '../../src/sync/dead-letters';
import { incrementalSync } from '../../src/sync/incremental';
import { startStack, type Stack } from '../../stack';
import { diffHashes, incrementalSettings, mapperFor, reconcileBySearch, targetHashes, trimSource } from '../helpers/incremental-stack';
import { fhirGet, getAccessToken } from '../helpers/openemr-standin-client';
import { fakeDateOnly, HOUR_MS, nextDstChange, zoneLabel as zoneLabelOf } from '../helpers/dst-clock';

/**
 * OpenEMR labels every stored local wall-clock time with TODAY's UTC offset, whatever the row's
 * season: UtilsService::getLocalDateAsUTC (src/Services/Utils/UtilsService.php:404-415) builds
 * `new \DateTime($date, new \DateTimeZone(date('P')))`, and interface/globals.php:518 sets MySQL's
 * session zone to `(new DateTime())->format("P")`. So when the server's zone crosses a DST change,
 * the emitted effectiveDateTime, issued and meta.lastUpdated of every existing row move by an hour
 * while no last_updated column moves: incremental sync cannot see it, reconciliation (content
 * hashes) must.
 *
 * The whole process's clock (connector, Entra and AHDS stand-ins, the OpenEMR stand-in's server
 * clock) is set to two hours before the next America/New_York DST change and then moved across it,
 * as time passes on a real deployment; only Date is faked, timers run for real.
 */

jest.setTimeout(300_000);

const ZONE = 'America/New_York';
const zoneLabel = (ms: number) => zoneLabelOf(ZONE, ms);

const change = nextDstChange(ZONE, Date.now());

let stack: Stack;
beforeAll(async () => {
  fakeDateOnly(change - 2 * HOUR_MS);
  stack = await startStack({ azurite: true, openemr: { timeZone: ZONE } });
  trimSource(stack, 200);
});
afterAll(async () => {
  await stack?.close();
  jest.useRealTimers();
});

/** What the stand-in serves now (every Patient, each one's Observations), mapped as a sync maps it: "Type/id" -> content hash. */
async function servedSource(): Promise<Map<string, string>> {
  const mapper = mapperFor(incrementalSettings(stack));
  const token = await getAccessToken(stack.openemr);
  const hashes = new Map<string, string>();
  const add = (resource: SyncedResource) => {
    const outcome = mapper.map(resource);
    if (outcome.ok) hashes.set(`${resource.resourceType}/${outcome.resource.id}`, contentHash(outcome.resource as never));
  };
  for (const id of stack.openemr.store.ids('Patient')) {
    add((await fhirGet(stack.openemr, `/Patient/${id}`, token)).body);
    const bundle = (await fhirGet(stack.openemr, `/Observation?patient=${id}`, token)).body;
    for (const entry of bundle.entry ?? []) add(entry.resource);
  }
  return hashes;
}

const targetDiff = async () => diffHashes(await servedSource(), await targetHashes(stack));

test('a DST change shifts every emitted Observation time without moving lastUpdated: incremental sync misses it, reconcile rewrites exactly those', async () => {
  const settings = incrementalSettings(stack, {
    SYNC_TABLE_PREFIX: `d${randomUUID().replace(/-/g, '').slice(0, 10)}`,
    SYNC_LAG_SECONDS: '0',
    SYNC_OVERLAP_SECONDS: '60',
    // What servedSource compares: Patients and Observations. The shift moves the other types' emitted
    // DATETIMEs too (every DiagnosticReport's issued), which reconcile rewrites the same way.
    SYNC_RESOURCE_TYPES: 'Patient,Observation',
  });
  const connector = await createConnector(loadConfig(settings), { deadLetters: new MemoryDeadLetterStore() });
  const runOnce = async () => {
    const outcome = await incrementalSync(connector).run({ trigger: 'cli' });
    if (outcome.skipped) throw new Error('skipped');
    return outcome.value;
  };
  const observationsWithTimes = stack.openemr.store
    .ids('Observation')
    .map((id) => stack.openemr.store.get('Observation', id)!)
    .filter((o) => [o.effectiveDateTime, o.issued].some((v) => typeof v === 'string' && v.includes('T'))).length;
  expect(observationsWithTimes).toBeGreaterThan(0);

  const first = await runOnce();
  expect(first.status).toBe('ok');
  expect(await targetDiff()).toEqual({ missing: [], stale: [], extra: [] });
  const before = (
    await fhirGet(stack.openemr, `/Observation/${stack.openemr.store.ids('Observation')[0]}`, await getAccessToken(stack.openemr))
  ).body;

  // Three hours pass: the server's zone crosses the DST change. No row is written.
  jest.setSystemTime(Date.now() + 3 * HOUR_MS);
  expect(zoneLabel(Date.now())).not.toBe(zoneLabel(change - HOUR_MS));
  const after = (await fhirGet(stack.openemr, `/Observation/${before.id}`, await getAccessToken(stack.openemr))).body;
  // The same row, the same stored wall-clock time, now an hour apart as an instant.
  expect(Math.abs(Date.parse(after.effectiveDateTime) - Date.parse(before.effectiveDateTime))).toBe(HOUR_MS);
  expect(Math.abs(Date.parse(after.meta.lastUpdated) - Date.parse(before.meta.lastUpdated))).toBe(HOUR_MS);

  // Incremental sync sees nothing: no last_updated column moved.
  const second = await runOnce();
  expect(second.status).toBe('ok');
  expect(second.created + second.updated + second.failed).toBe(0);
  const shifted = await targetDiff();
  expect(shifted.missing).toEqual([]);
  expect(shifted.extra).toEqual([]);
  expect(shifted.stale).toHaveLength(observationsWithTimes);
  expect(shifted.stale.every((key) => key.startsWith('Observation/'))).toBe(true);

  // Reconciliation compares content and rewrites exactly the shifted Observations.
  const summary = await reconcileBySearch(connector);
  expect(summary.status).toBe('ok');
  expect(summary.byType.Observation).toMatchObject({ stale: observationsWithTimes, missing: 0, deletedAtSource: 0 });
  expect(summary.byType.Patient).toMatchObject({ stale: 0, missing: 0, deletedAtSource: 0 });
  expect(summary.written).toMatchObject({ updated: observationsWithTimes, created: 0, failed: 0 });
  expect(await targetDiff()).toEqual({ missing: [], stale: [], extra: [] });
});
