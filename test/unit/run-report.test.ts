import type { Watermark, WatermarkStore } from '../../src/state/watermarks';
import { freshnessByType, reportFreshness, reportUnfinishedRun } from '../../src/sync/run-report';
import { METRICS } from '../../src/telemetry/names';
import { RecordingTelemetry } from '../../src/telemetry/telemetry';

/** Watermarks as a table holds them: a row per type ever carried, whatever is carried now. */
function marks(untils: Record<string, string>): WatermarkStore {
  return {
    get: async (type) =>
      untils[type] ? ({ resourceType: type, until: untils[type], runId: 'r', via: 'search', updatedAt: '' } as Watermark) : undefined,
    advance: async () => undefined,
  };
}

const NOW = Date.parse('2026-12-02T10:00:00Z');
const stored = marks({
  Patient: '2026-12-02T09:59:00Z',
  Encounter: '2026-12-02T09:50:00Z',
  // A type carried once and dropped from SYNC_RESOURCE_TYPES since: its old row must not count.
  Condition: '2026-01-01T00:00:00Z',
});

test('freshness is measured for the carried types only, each from its own watermark (types without one are left out)', async () => {
  expect(await freshnessByType(stored, ['Patient', 'Encounter', 'Observation'], NOW)).toEqual({ Patient: 60, Encounter: 600 });
  // A type the table gains later is measured as soon as it is carried.
  expect(await freshnessByType(stored, ['Patient', 'Condition'], NOW)).toEqual({
    Patient: 60,
    Condition: (NOW - Date.parse('2026-01-01T00:00:00Z')) / 1000,
  });
});

test('the freshness gauge carries the resource type dimension per carried type, and the lag is the stalest of them', async () => {
  const telemetry = new RecordingTelemetry();
  const lag = await reportFreshness({ telemetry, watermarks: stored, types: ['Patient', 'Encounter'] }, NOW);
  expect(lag).toBe(600);
  expect(telemetry.calls.map((c) => c.data)).toEqual([
    { name: METRICS.freshnessSeconds, value: 60, properties: { resourceType: 'Patient' } },
    { name: METRICS.freshnessSeconds, value: 600, properties: { resourceType: 'Encounter' } },
  ]);
});

test('a failed run reports the lag of the carried types, not of a type no longer carried', async () => {
  const telemetry = new RecordingTelemetry();
  await reportUnfinishedRun(
    { telemetry, watermarks: stored, types: ['Patient', 'Encounter'] },
    { runId: 'r1', trigger: 'timer', operation: 'incrementalSync', status: 'failed', error: new Error('x'), startedAt: NOW - 1000 },
    NOW,
  );
  const run = telemetry.calls.find((c) => c.kind === 'run')!.data as { lagSeconds?: number; status: string };
  expect(run).toMatchObject({ status: 'failed', lagSeconds: 600 });
});
