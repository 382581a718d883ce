import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { main, ProgressReporter } from '../../src/cli/sync-cli';
import type { OpenEmrReader } from '../../src/openemr/reader';
import { patientsInWindow } from '../../src/openemr/patient-pages';
import { planBackfill } from '../../src/sync/planner';
import { Tally } from '../../src/sync/tally';
import { MAX_DEQUEUE_COUNT, parseWorkItem, workItemFromId, workItemId } from '../../src/sync/work-queue';

/**
 * A fake OpenEMR reader with the real server's Patient search semantics: each parameter arrives
 * once (the reader refuses arrays: PHP keeps only the last value of a repeated key), `ge` on
 * lastUpdated, `_sort=_lastUpdated` with NO tie-break (ties come back in a new random order on
 * every request, as MySQL may give them across LIMIT windows), `_count` capped at 200, `_offset`.
 */
function fakeOpenEmr(patients: Array<{ id: string; t: number }>, seed = 1) {
  const calls: string[] = [];
  let state = seed;
  const random = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const stamp = (t: number) => new Date(t).toISOString().replace('.000Z', '-00:00').replace('Z', '');
  const sorted = (lo: number, pred: (t: number) => boolean = () => true) =>
    patients
      .filter((p) => p.t >= lo && pred(p.t))
      .map((p) => ({ p, k: random() }))
      .sort((a, b) => a.p.t - b.p.t || a.k - b.k)
      .map(({ p }) => ({ resourceType: 'Patient', id: p.id, meta: { lastUpdated: stamp(p.t) } }));
  const reader = {
    async patientPage(q: { since?: string; count: number }) {
      calls.push(`page ge=${q.since ?? '-'} count=${q.count}`);
      return sorted(q.since ? Date.parse(q.since) : -Infinity).slice(0, Math.min(q.count, 200));
    },
    async patientsInSecond(second: string) {
      calls.push(`eq ${second}`);
      const s = Date.parse(second);
      return sorted(s, (t) => t < s + 1000);
    },
    async patientAt(q: { since?: string; offset: number }) {
      calls.push(`probe ge=${q.since ?? '-'} offset=${q.offset}`);
      return sorted(q.since ? Date.parse(q.since) : -Infinity)[q.offset];
    },
    async supportedRelease() {
      return { release: { version: '7.0.3' }, now: Date.now() };
    },
  };
  return { reader: reader as unknown as OpenEmrReader, calls };
}

const T0 = Date.parse('2025-01-01T00:00:00Z');

describe('Patient pages (ge cursor, no tie-break)', () => {
  test('crowded seconds (many Patients in one second, ties in a new order on every request) are read without skipping or repeating a Patient', async () => {
    // 450 legacy rows in one second (the 7.0.3 upgrade), then 3 busy seconds of 150, 201 and 40, then one a minute.
    const patients = [
      ...Array.from({ length: 450 }, (_, i) => ({ id: `legacy${i}`, t: T0 })),
      ...Array.from({ length: 150 }, (_, i) => ({ id: `a${i}`, t: T0 + 5000 })),
      ...Array.from({ length: 201 }, (_, i) => ({ id: `b${i}`, t: T0 + 6000 })),
      ...Array.from({ length: 40 }, (_, i) => ({ id: `c${i}`, t: T0 + 7000 })),
      ...Array.from({ length: 300 }, (_, i) => ({ id: `m${i}`, t: T0 + 60_000 * (i + 1) })),
    ];
    for (const seed of [1, 2, 3]) {
      const { reader, calls } = fakeOpenEmr(patients, seed);
      const got: string[] = [];
      for await (const page of patientsInWindow(reader, 200, undefined, undefined)) got.push(...page.map((p) => p.id!));
      expect(got.length).toBe(patients.length);
      expect(new Set(got).size).toBe(patients.length);
      // About one request per 200 Patients, plus one whole-second read per crowded second.
      expect(calls.length).toBeLessThanOrEqual(Math.ceil(patients.length / 200) + 6);
    }
  });

  test('the upper bound is applied on the client: reading stops at the first Patient at or past it', async () => {
    const patients = Array.from({ length: 1000 }, (_, i) => ({ id: `p${i}`, t: T0 + i * 1000 }));
    const { reader, calls } = fakeOpenEmr(patients);
    const got: string[] = [];
    for await (const page of patientsInWindow(reader, 200, T0 + 100_000, T0 + 300_000)) got.push(...page.map((p) => p.id!));
    expect(got).toEqual(Array.from({ length: 200 }, (_, i) => `p${i + 100}`));
    // Pages hold back their last second, so 200 Patients take two pages and the third sees the bound.
    expect(calls.length).toBeLessThanOrEqual(3);
  });

  test('a Patient that changes during the run is not skipped (it moves later and is read there)', async () => {
    const patients = Array.from({ length: 10 }, (_, i) => ({ id: `p${i}`, t: T0 + i * 1000 }));
    const { reader } = fakeOpenEmr(patients);
    const pages: string[][] = [];
    for await (const page of patientsInWindow(reader, 3, T0, T0 + 60_000)) {
      pages.push(page.map((p) => p.id!));
      if (pages.length === 1) patients[5]!.t = T0 + 30_000;
    }
    expect(new Set(pages.flat())).toEqual(new Set(patients.map((p) => p.id)));
  });

  test('every search parameter is sent once: a repeated key is refused before it leaves', async () => {
    const { OpenEmrReader } = await import('../../src/openemr/reader');
    const reader = Object.create(OpenEmrReader.prototype) as InstanceType<typeof OpenEmrReader>;
    await expect(
      reader.search('Observation', { _lastUpdated: ['ge2025-01-01T00:00:00Z', 'lt2025-02-01T00:00:00Z'] } as never),
    ).rejects.toThrow(/one value/);
  });
});

describe('backfill planner', () => {
  test('plans Patient windows of about a page each with one-entry probes; each Patient falls in exactly one window', async () => {
    // 437 Patients over about a year, bunched: 300 in the first hour (250 of them in one second), then one a day.
    const patients = Array.from({ length: 437 }, (_, i) => ({
      id: `p${i}`,
      t: i < 250 ? T0 : i < 300 ? T0 + i * 10_000 : T0 + (i - 299) * 86_400_000,
    }));
    const { reader, calls } = fakeOpenEmr(patients);
    const plan = await planBackfill(reader, {
      since: new Date(T0).toISOString(),
      until: new Date(T0 + 100 * 86_400_000).toISOString(),
      pageSize: 100,
    });
    const windows = plan.items.map((i) => [Date.parse(i.since), Date.parse(i.until)] as const);
    expect(plan.items.every((i) => i.kind === 'patients')).toBe(true);
    expect(windows).toHaveLength(plan.patientWindows);
    for (const p of patients) expect(windows.filter(([a, b]) => p.t >= a && p.t < b)).toHaveLength(1);
    // The crowded second is one window of its own; every other window but the open last holds at most a page.
    for (const [a, b] of windows.slice(0, -1))
      expect(patients.filter((p) => p.t >= a && p.t < b).length === 250 || patients.filter((p) => p.t >= a && p.t < b).length <= 100).toBe(
        true,
      );
    expect(calls.every((c) => c.startsWith('probe'))).toBe(true);
    expect(calls).toHaveLength(plan.probes);
    expect(plan.probes).toBeLessThanOrEqual(Math.ceil(437 / 100) + 2);
    expect(plan.observationWindows).toBe(0);
  });

  test('work items round-trip through queue text and dead-letter ids; anything else is refused', () => {
    const item = { kind: 'observations' as const, since: '2025-01-01T00:00:00.000Z', until: '2025-02-01T00:00:00.000Z' };
    expect(parseWorkItem(Buffer.from(JSON.stringify(item)).toString('base64'))).toEqual(item);
    expect(parseWorkItem(item)).toEqual(item);
    expect(workItemFromId(workItemId(item))).toEqual(item);
    expect(workItemId(item)).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(parseWorkItem({ kind: 'patients', offset: 0, count: 5 })).toBeUndefined();
    expect(parseWorkItem({ kind: 'patients', since: 'yesterday', until: '2025-02-01T00:00:00.000Z' })).toBeUndefined();
    expect(parseWorkItem('hello')).toBeUndefined();
  });

  test('MAX_DEQUEUE_COUNT is host.json extensions.queues.maxDequeueCount', () => {
    const host = JSON.parse(readFileSync(path.resolve(__dirname, '..', '..', 'host.json'), 'utf8'));
    expect(host.extensions.queues.maxDequeueCount).toBe(MAX_DEQUEUE_COUNT);
  });
});

describe('sync CLI', () => {
  const io = () => {
    let text = '';
    const sink = new Writable({ write: (c, _e, cb) => ((text += c.toString()), cb()) });
    return { io: { stdout: Object.assign(sink, { isTTY: false }), stderr: sink, env: {}, cwd: '/nonexistent' }, text: () => text };
  };

  test('refuses conflicting or malformed options with one line (no stack trace) and exit code 64; --help prints the usage', async () => {
    for (const argv of [
      ['--full', '--since', '2025-01-01T00:00:00Z'],
      ['--since', 'last tuesday'],
      ['--since', '2020-02-30'],
      ['--bogus'],
      ['--reconcile', '--replay'],
      ['extra'],
    ]) {
      const { io: cli, text } = io();
      expect(await main(argv, cli as never)).toBe(64);
      expect(text()).toMatch(/Run with --help for the options\.\n$|^--since must be/);
      expect(text().trim().split('\n')).toHaveLength(1);
    }
    const { io: cli, text } = io();
    expect(await main(['--help'], cli as never)).toBe(0);
    expect(text()).toMatch(/^Usage: npm run sync --/);
  });

  test('a missing setting exits 1 with the sentence naming it', async () => {
    const { io: cli, text } = io();
    expect(await main([], cli as never)).toBe(1);
    expect(text()).toMatch(/Setting OPENEMR_BASE_URL is required/);
  });

  test('progress: a redrawn bar with counts, rate and ETA on a terminal, plain lines elsewhere', () => {
    const tally = new Tally();
    tally.read = 100;
    tally.addWrites(
      Array.from({ length: 80 }, (_, i) => ({ resourceType: 'Observation', id: `o${i}`, outcome: 'created' as const, attempts: 1 })),
    );
    const chunks: string[] = [];
    const out = Object.assign(new Writable({ write: (c, _e, cb) => (chunks.push(c.toString()), cb()) }), { isTTY: true, columns: 200 });
    const tty = new ProgressReporter(out, true, 0);
    tty.update(tally, 'Observation', 0.25);
    expect(chunks[0]!.startsWith('\r\u001b[K')).toBe(true); // carriage return, then clear the line
    expect(chunks[0]!.slice(4)).toMatch(
      /^\[#####---------------\] 25% Observation: read 100, written 80 \(created 80, updated 0, unchanged 0\), failed 0, \d+\/s, ETA \d+s$/,
    );
    const plain: string[] = [];
    const pipe = new ProgressReporter(
      Object.assign(new Writable({ write: (c, _e, cb) => (plain.push(c.toString()), cb()) }), { isTTY: false }),
      false,
      0,
    );
    pipe.update(tally, 'Patient');
    // No fraction and no total: no bar and no ETA rather than "ETA ?".
    expect(plain[0]).toMatch(/^Patient: read 100, written 80 .*, failed 0, \d+\/s\n$/);
  });

  test('progress of --full and reconcile: a bar and ETA from the expected total, never cut on a 0-column terminal', () => {
    const tally = new Tally();
    tally.read = 100;
    const chunks: string[] = [];
    const out = Object.assign(new Writable({ write: (c, _e, cb) => (chunks.push(c.toString()), cb()) }), { isTTY: true, columns: 0 });
    const reporter = new ProgressReporter(out, true, 0);
    reporter.total = 400;
    reporter.update(tally, 'export');
    expect(chunks[0]!.startsWith('\r\u001b[K')).toBe(true); // carriage return, then clear the line
    expect(chunks[0]!.slice(4)).toMatch(
      /^\[#####---------------\] 25% export: read 100 of ~400, written 0 \(created 0, updated 0, unchanged 0\), failed 0, \d+\/s, ETA \d+s$/,
    );
    // Past the estimate the bar holds below 100% until the run ends.
    tally.read = 500;
    reporter.update(tally, 'export');
    expect(chunks[1]).toMatch(/\[###################-\] 99% export: read 500 of ~400/);
  });
});
