import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { main, ProgressReporter } from '../../src/cli/sync-cli';
import type { OpenEmrReader } from '../../src/openemr/reader';
import { forEachObservationWindow } from '../../src/sync/incremental-windows';
import { patientsInWindow } from '../../src/openemr/patient-pages';
import { planBackfill } from '../../src/sync/planner';
import { Tally } from '../../src/sync/tally';
import { MAX_DEQUEUE_COUNT, parseWorkItem, workItemFromId, workItemId } from '../../src/sync/work-queue';

/** A fake OpenEMR with its search semantics: Patient sorted/paged, Observation _count per sub-service capped at 200. */
function fakeOpenEmr(patients: Array<{ id: string; t: number }>, observations: Array<{ id: string; t: number; cat: string }>) {
  const calls: string[] = [];
  const iso = (t: number) => new Date(t).toISOString().replace('.000Z', '-00:00').replace('Z', '');
  const bounds = (values: string[] = []) => {
    let lo = -Infinity;
    let hi = Infinity;
    for (const v of values) {
      if (v.startsWith('ge')) lo = Date.parse(v.slice(2));
      if (v.startsWith('lt')) hi = Date.parse(v.slice(2));
    }
    return { lo, hi };
  };
  const reader = {
    async patientPage(q: { offset: number; count: number; window?: { since?: string; until?: string } }) {
      calls.push(`Patient offset=${q.offset} count=${q.count}`);
      const lo = q.window?.since ? Date.parse(q.window.since) : -Infinity;
      const hi = q.window?.until ? Date.parse(q.window.until) : Infinity;
      const hits = patients.filter((p) => p.t >= lo && p.t < hi).sort((a, b) => a.t - b.t || a.id.localeCompare(b.id));
      return hits.slice(q.offset, q.offset + Math.min(q.count, 200)).map((p) => ({ resourceType: 'Patient', id: p.id, meta: { lastUpdated: iso(p.t) } }));
    },
    async search(_type: string, params: Record<string, string | string[]>) {
      calls.push('Observation');
      const { lo, hi } = bounds(params._lastUpdated as string[]);
      const cap = params._count ? Math.min(Number(params._count), 200) : Infinity;
      const byCat = new Map<string, unknown[]>();
      for (const o of observations.filter((o) => o.t >= lo && o.t < hi)) {
        const list = byCat.get(o.cat) ?? [];
        if (list.length < cap) list.push({ resourceType: 'Observation', id: o.id, meta: { lastUpdated: iso(o.t) } });
        byCat.set(o.cat, list);
      }
      return [...byCat.values()].flat();
    },
    async observationsInWindow(w: { since?: string; until?: string }) {
      return reader.search('Observation', { _lastUpdated: [`ge${w.since}`, `lt${w.until}`] });
    },
  };
  return { reader: reader as unknown as OpenEmrReader, calls };
}

const T0 = Date.parse('2025-01-01T00:00:00Z');

describe('window reads', () => {
  test('Observation windows split in halves until each answer fits, and every Observation is handed out exactly once', async () => {
    const observations = Array.from({ length: 1500 }, (_, i) => ({ id: `o${i}`, t: T0 + (i % 700) * 60_000 + (i % 3) * 1000, cat: ['laboratory', 'vital-signs', 'survey'][i % 3]! }));
    // 40 in one second: more than an answer may hold, read whole since a second cannot be split.
    for (let i = 0; i < 40; i++) observations.push({ id: `same${i}`, t: T0 + 5_000_000, cat: 'laboratory' });
    const { reader } = fakeOpenEmr([], observations);
    const seen: string[] = [];
    let lastFraction = 0;
    const stats = await forEachObservationWindow(reader, T0, T0 + 86_400_000, { maxPerAnswer: 25, onCovered: (f) => (lastFraction = f) }, async (obs) => {
      expect(obs.length).toBeLessThanOrEqual(40);
      seen.push(...obs.map((o) => o.id!));
    });
    expect(seen.sort()).toEqual(observations.map((o) => o.id).sort());
    expect(new Set(seen).size).toBe(seen.length);
    expect(stats.windows).toBeGreaterThan(1540 / 25);
    expect(lastFraction).toBe(1);
  });

  test('Patient keyset paging: a Patient that changes during the run cannot push another past a page boundary', async () => {
    const patients = Array.from({ length: 10 }, (_, i) => ({ id: `p${i}`, t: T0 + i * 1000 }));
    const { reader } = fakeOpenEmr(patients, []);
    const pages: string[][] = [];
    for await (const page of patientsInWindow(reader, 3, T0, T0 + 60_000)) {
      pages.push(page.map((p) => p.id!));
      // After the first page, p1 is edited: its lastUpdated jumps past the window's upper bound.
      if (pages.length === 1) patients[1]!.t = T0 + 120_000;
    }
    // With _offset paging, p3 would have slid to offset 2 and been skipped.
    expect(pages.flat().sort()).toEqual(patients.map((p) => p.id).sort());
  });

  test('Patient keyset paging pages through a second that holds more than a page', async () => {
    const patients = Array.from({ length: 11 }, (_, i) => ({ id: `p${String(i).padStart(2, '0')}`, t: T0 + (i < 8 ? 0 : i * 1000) }));
    const { reader } = fakeOpenEmr(patients, []);
    const got: string[] = [];
    for await (const page of patientsInWindow(reader, 3, T0, T0 + 60_000)) got.push(...page.map((p) => p.id!));
    expect(got.sort()).toEqual(patients.map((p) => p.id).sort());
    expect(new Set(got).size).toBe(11);
  });
});

describe('backfill planner', () => {
  test('plans Patient windows of at most a page each with one-entry probes; each Patient falls in exactly one; empty Observation windows are left out', async () => {
    // 437 Patients over about a year, bunched: 300 in the first hour, then one a day.
    const patients = Array.from({ length: 437 }, (_, i) => ({ id: `p${i}`, t: i < 300 ? T0 + i * 10_000 : T0 + (i - 299) * 86_400_000 }));
    const observations = [{ id: 'a', t: T0 + 1000, cat: 'laboratory' }, { id: 'b', t: T0 + 400 * 86_400_000, cat: 'laboratory' }];
    const { reader, calls } = fakeOpenEmr(patients, observations);
    const plan = await planBackfill(reader, { since: new Date(T0).toISOString(), until: new Date(T0 + 800 * 86_400_000).toISOString(), pageSize: 100, windowSeconds: 30 * 86400 });
    const windows = plan.items.filter((i) => i.kind === 'patients').map((i) => [Date.parse(i.since), Date.parse(i.until)] as const);
    expect(windows).toHaveLength(plan.patientWindows);
    for (const p of patients) expect(windows.filter(([a, b]) => p.t >= a && p.t < b)).toHaveLength(1);
    for (const [a, b] of windows) {
      expect(patients.filter((p) => p.t >= a && p.t < b).length).toBeGreaterThan(0);
      expect(patients.filter((p) => p.t >= a && p.t < b).length).toBeLessThanOrEqual(100);
    }
    // Probes only: one entry each, never a page of data.
    expect(calls.filter((c) => c.startsWith('Patient')).every((c) => c.endsWith(' count=1'))).toBe(true);
    expect(calls).toHaveLength(plan.probes);
    expect(plan.probes).toBeLessThan(120);
    expect(plan.observationWindows).toBe(2);
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
    for (const argv of [['--full', '--since', '2025-01-01T00:00:00Z'], ['--since', 'last tuesday'], ['--since', '2020-02-30'], ['--bogus'], ['--reconcile', '--replay'], ['extra']]) {
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
    tally.addWrites(Array.from({ length: 80 }, (_, i) => ({ resourceType: 'Observation', id: `o${i}`, outcome: 'created' as const, attempts: 1 })));
    const chunks: string[] = [];
    const out = Object.assign(new Writable({ write: (c, _e, cb) => (chunks.push(c.toString()), cb()) }), { isTTY: true, columns: 200 });
    const tty = new ProgressReporter(out, true, 0);
    tty.update(tally, 'Observation', 0.25);
    expect(chunks[0]).toMatch(/^\r\x1b\[K\[#####---------------\] 25% Observation: read 100, written 80 \(created 80, updated 0, unchanged 0\), failed 0, \d+\/s, ETA \d+s$/);
    const plain: string[] = [];
    const pipe = new ProgressReporter(Object.assign(new Writable({ write: (c, _e, cb) => (plain.push(c.toString()), cb()) }), { isTTY: false }), false, 0);
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
    expect(chunks[0]).toMatch(/^\r\x1b\[K\[#####---------------\] 25% export: read 100 of ~400, written 0 \(created 0, updated 0, unchanged 0\), failed 0, \d+\/s, ETA \d+s$/);
    // Past the estimate the bar holds below 100% until the run ends.
    tally.read = 500;
    reporter.update(tally, 'export');
    expect(chunks[1]).toMatch(/\[###################-\] 99% export: read 500 of ~400/);
  });
});
