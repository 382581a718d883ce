/**
 * `npm run bench`: throughput and memory of the connector on the local stack with a realistic
 * latency profile injected, against (a) the naive sequential loop of the original design and
 * (c) the raw limit of the AHDS stand-in. See docs/performance.md.
 *
 *   npm run bench -- --observations 1000000
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import { planBatches } from '../../src/ahds/batching';
import { loadConfig } from '../../src/config/load';
import { createConnector } from '../../src/connector';
import { canonicalJson } from '../../src/fhir/canonical';
import type { SyncedResource } from '../../src/fhir/types';
import { createResourceMapper } from '../../src/mapping';
import { connectorSettings } from '../../stack';
import { mappingOptions } from '../../src/connector';
import { startAhdsStandIn, type AhdsStandIn } from '../../stack/ahds';
import type { FaultProfile } from '../../stack/faults';
import { startEntraStandIn, type EntraStandIn } from '../../stack/entra';
import type { RequestStatsSnapshot } from '../../stack/openemr/request-stats';
import { Worker } from 'node:worker_threads';
import type { OpenEmrWorkerData } from './openemr-worker';
import type { ConnectorRunReport } from './connector-run';
import { loadTemplates, observationsOf, planPatients, type GeneratedPatient, type Json, type Templates } from './data';

const USAGE = `npm run bench -- [options]
  --observations N       Observations to generate (default 100000)
  --patients N           Patients (default observations/100, at least 1)
  --openemr-latency MS   added to every OpenEMR request (default 30)
  --ahds-latency MS      added to every AHDS request (default 40)
  --entry-cost MS        added per bundle entry by AHDS (default 1)
  --naive-sample N       resources written by the naive loop (default 300)
  --raw-sample N         resources posted per concurrency level for the raw limit (default 25000)
  --raw-levels LIST      concurrency levels tried for the raw limit (default 4,8,16,32)
  --seed N               data seed (default 42)
  --set KEY=VALUE        extra connector setting for the connector run (repeatable), e.g. --set AHDS_BATCH_SIZE=500
  --connector-heap-mb N   V8 heap cap of the connector process (default 256; 0: V8's default for this host)
  --connector-node-args=ARGS  more node flags for the connector process (e.g. --cpu-prof)
  --skip-naive, --skip-raw, --skip-incremental
  --help`;

const { values: opts } = parseArgs({
  options: {
    observations: { type: 'string', default: '100000' },
    patients: { type: 'string' },
    'openemr-latency': { type: 'string', default: '30' },
    'ahds-latency': { type: 'string', default: '40' },
    'entry-cost': { type: 'string', default: '1' },
    'naive-sample': { type: 'string', default: '300' },
    'raw-sample': { type: 'string', default: '25000' },
    'raw-levels': { type: 'string', default: '4,8,16,32' },
    seed: { type: 'string', default: '42' },
    set: { type: 'string', multiple: true, default: [] },
    'skip-naive': { type: 'boolean', default: false },
    'skip-raw': { type: 'boolean', default: false },
    'skip-incremental': { type: 'boolean', default: false },
    'connector-node-args': { type: 'string', default: '' },
    'connector-heap-mb': { type: 'string', default: '256' },
    help: { type: 'boolean', default: false },
  },
  allowPositionals: false,
});

const num = (name: keyof typeof opts): number => {
  const v = Number(opts[name]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} must be a non-negative number`);
  return v;
};

const log = (line: string): void => void process.stderr.write(`${line}\n`);
const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const mb = (bytes: number): number => Math.round(bytes / 1048576);

async function main(): Promise<void> {
  if (opts.help) {
    log(USAGE);
    return;
  }
  const observations = Math.floor(num('observations'));
  const patients = Math.max(1, Math.floor(opts.patients !== undefined ? num('patients') : observations / 100));
  if (await reexecWithBiggerHeap(observations)) return;

  const seed = Math.floor(num('seed'));
  const profile = {
    openemr: { latencyMs: num('openemr-latency') } satisfies FaultProfile,
    ahds: { latencyMs: num('ahds-latency'), perEntryLatencyMs: num('entry-cost') } satisfies FaultProfile,
  };
  const tuning = Object.fromEntries(
    (opts.set ?? []).map((kv) => {
      const eq = kv.indexOf('=');
      if (eq < 1) throw new Error(`--set wants KEY=VALUE, got ${kv}`);
      return [kv.slice(0, eq), kv.slice(eq + 1)];
    }),
  );

  log(`bench: ${fmt(patients)} Patients, ${fmt(observations)} Observations, seed ${seed}; latency OpenEMR ${profile.openemr.latencyMs} ms/request, AHDS ${profile.ahds.latencyMs} ms/request + ${profile.ahds.perEntryLatencyMs} ms/entry; ${os.cpus().length} CPUs`);
  const templates = loadTemplates();
  const planned = planPatients(templates, patients, observations, seed);

  const stack = await startBenchStack({ patients, observations, seed, faults: profile.openemr }, profile.ahds);
  try {
    let t: number;
    const connectorEnv: Record<string, string> = { ...stack.env, ...tuning };
    const config = loadConfig(connectorEnv);

    // (c) the raw limit of the AHDS stand-in: pre-built, already mapped bundles, best concurrency.
    let raw: RawResult | undefined;
    if (!opts['skip-raw']) {
      const levels = String(opts['raw-levels']).split(',').map(Number).filter((n) => n > 0);
      raw = await rawLimit(stack, templates, planned, config, profile.ahds, levels, Math.floor(num('raw-sample')));
    }

    // (a) the naive loop: read one, PUT one, wait.
    let naive: { resources: number; seconds: number; rate: number } | undefined;
    if (!opts['skip-naive']) naive = await naiveLoop(stack, templates, planned, connectorEnv, profile.ahds, Math.floor(num('naive-sample')));

    // (b) the connector's full sync, in its own process.
    await stack.openemr.resetStats();
    stack.ahds.resetStats();
    log('(b) connector full sync in a child process ...');
    t = performance.now();
    const benchCpu0 = process.cpuUsage();
    const entryRates: number[] = [];
    let lastEntries = 0;
    const rateTimer = setInterval(() => {
      const e = stack.ahds.stats().entries;
      entryRates.push(e - lastEntries);
      lastEntries = e;
    }, 1000);
    const run = await runConnector(connectorEnv).finally(() => clearInterval(rateTimer));
    const bSeconds = (performance.now() - t) / 1000;
    const benchCpu = process.cpuUsage(benchCpu0);
    const benchCpuMs = (benchCpu.user + benchCpu.system) / 1000;
    const childCpuMs = run.cpuUserMs + run.cpuSystemMs;
    const cores = os.cpus().length;
    const hostBusy = (benchCpuMs + childCpuMs) / (bSeconds * 1000 * cores);
    const written = run.created + run.updated + run.unchanged;
    const bRate = written / (run.wallMs / 1000);
    const oStats = await stack.openemr.stats();
    const aStats = stack.ahds.stats();
    log(`(b) ${run.status}: ${fmt(written)} written (${fmt(run.created)} created, ${fmt(run.failed)} failed) in ${fmt(run.wallMs / 1000, 1)} s (child wall ${fmt(bSeconds, 1)} s): ${fmt(bRate)} resources/s; peak RSS ${fmt(run.maxRssKb / 1024)} MB; limiter peak ${run.limiterPeak}; OpenEMR requests ${fmt(oStats.requests)}, AHDS requests ${fmt(aStats.requests)} (${fmt(aStats.entries)} entries; ${JSON.stringify(aStats.byEntryStatus)})`);
    log(`    CPU during (b): stand-ins ${fmt(benchCpuMs / 1000, 1)} s, connector ${fmt(childCpuMs / 1000, 1)} s; host ${fmt(hostBusy * 100)}% busy (${cores} cores)`);
    if (run.failures.length) log(`    failures: ${JSON.stringify(run.failures)}`);
    log(`    RSS profile (MB, every ${run.sampleMs} ms or coarser): ${summariseProfile(run.rssSamplesMb)}`);
    log(`    adaptive limit: ${summariseProfile(run.limitSamples)}`);
    log(`    AHDS entries per second: ${summariseProfile(entryRates)}`);
    if (process.env.BENCH_FULL_PROFILE) log(`    full: ${entryRates.join(" ")}`);

    // Incremental run with no changes: what does it cost?
    let incremental: { openemrRequests: number; ahdsRequests: number; tokenRequests: number; read: number; wallMs: number } | undefined;
    if (!opts['skip-incremental']) {
      await stack.openemr.resetStats();
      stack.ahds.resetStats();
      const entraBefore = stack.entra.stats().tokenRequests;
      const since = new Date((await stack.openemr.now()) - 5 * 60_000).toISOString();
      const inc = await runConnector({ ...connectorEnv, BENCH_SINCE: since });
      const incStats = await stack.openemr.stats();
      incremental = {
        openemrRequests: incStats.requests,
        ahdsRequests: stack.ahds.stats().requests,
        tokenRequests: stack.entra.stats().tokenRequests - entraBefore,
        read: inc.read,
        wallMs: inc.wallMs,
      };
      log(`incremental run with no changes (window since ${since}): read ${inc.read}, OpenEMR requests ${incremental.openemrRequests} (${JSON.stringify(incStats.byRoute)}), AHDS requests ${incremental.ahdsRequests}, Entra token requests ${incremental.tokenRequests}`);
    }

    // Correctness: the AHDS stand-in holds every generated resource.
    const verified = verify(stack.ahds, templates, planned);
    log(`verify: AHDS stand-in holds ${fmt(verified.found)} of ${fmt(verified.expected)} generated resources${verified.missing.length ? `; missing e.g. ${verified.missing.slice(0, 3).join(', ')}` : ''}`);

    const result = {
      observations,
      patients,
      resources: observations + patients,
      latency: { openemrMs: profile.openemr.latencyMs, ahdsMs: profile.ahds.latencyMs, entryMs: profile.ahds.perEntryLatencyMs },
      settings: { batchSize: config.ahds.batchSize, maxConcurrency: config.ahds.maxConcurrency, initialConcurrency: config.ahds.initialConcurrency, readConcurrency: config.openemr.readConcurrency },
      naive: naive && { resources: naive.resources, rate: round(naive.rate, 1) },
      connector: {
        rate: Math.round(bRate),
        seconds: round(run.wallMs / 1000, 1),
        peakRssMb: Math.round(run.maxRssKb / 1024),
        heapUsedPeakMb: run.heapUsedPeakMb,
        cpuMsPerResource: round((run.cpuUserMs + run.cpuSystemMs) / Math.max(1, written), 3),
        limiterPeak: run.limiterPeak,
        cpuMs: childCpuMs,
        standInsCpuMs: Math.round(benchCpuMs),
        hostBusyPct: Math.round(hostBusy * 100),
        heapCapMb: Math.floor(num('connector-heap-mb')) || null,
        status: run.status,
        failed: run.failed,
      },
      raw: raw && { rate: Math.round(raw.best.rate), concurrency: raw.best.concurrency, levels: raw.levels.map((l) => ({ concurrency: l.concurrency, rate: Math.round(l.rate) })) },
      ratios: {
        bOverA: naive ? round(bRate / naive.rate, 1) : null,
        bOverC: raw ? round(bRate / raw.best.rate, 2) : null,
      },
      incremental,
      verified: verified.found === verified.expected,
    };
    printTable(result);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    if (!result.verified || run.status !== 'ok') process.exitCode = 1;
  } finally {
    await stack.close();
  }
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

function* allObservations(templates: Templates, planned: GeneratedPatient[]): Generator<Json> {
  for (const p of planned) yield* observationsOf(templates, p);
}

/** Every generated resource in the order the connector reads them (Patients in pages, then theirs). */
function* allResources(templates: Templates, planned: GeneratedPatient[]): Generator<Json> {
  for (const p of planned) {
    yield p.patient;
    yield* observationsOf(templates, p);
  }
}

/** The stand-ins hold every resource in this process: give it room for 1M (about 10 KB each). */
async function reexecWithBiggerHeap(observations: number): Promise<boolean> {
  const wantMb = Math.ceil(1536 + observations * 0.012);
  const haveMb = v8.getHeapStatistics().heap_size_limit / 1048576;
  if (haveMb >= wantMb || process.env.BENCH_REEXEC) return false;
  log(`bench: restarting with --max-old-space-size=${wantMb} (heap limit ${Math.round(haveMb)} MB is too small for the stand-ins' data)`);
  const child = spawn(process.execPath, [...process.execArgv, `--max-old-space-size=${wantMb}`, __filename, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, BENCH_REEXEC: '1' },
  });
  const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
  process.exitCode = code;
  return true;
}

// ------------------------------------------------------------------------------------------- stack

interface BenchStack {
  entra: EntraStandIn;
  ahds: AhdsStandIn;
  openemr: { stats(): Promise<RequestStatsSnapshot>; resetStats(): Promise<void>; now(): Promise<number> };
  env: Record<string, string>;
  close(): Promise<void>;
}

/**
 * The local stack as startStack builds it (same stand-ins, same settings), except that the OpenEMR
 * stand-in runs on a worker thread with its own event loop (see openemr-worker.ts) and no Azurite.
 */
async function startBenchStack(data: OpenEmrWorkerData, ahdsFaults: FaultProfile): Promise<BenchStack> {
  const entra = await startEntraStandIn();
  const ahds = await startAhdsStandIn({ entra, faults: ahdsFaults });
  const heapMb = Math.ceil(512 + data.observations * 0.006);
  const worker = new Worker(path.join(__dirname, 'openemr-worker.js'), { workerData: data, resourceLimits: { maxOldGenerationSizeMb: heapMb } });
  const pending = new Map<number, (value: unknown) => void>();
  let nextId = 0;
  const ready = await new Promise<{ baseUrl: string; site: string; clientId: string; privateKeyPem: string; counts: Record<string, number>; loadMs: number }>((resolve, reject) => {
    worker.once('error', reject);
    worker.on('message', (m: { ready?: boolean; error?: string; id?: number; value?: unknown }) => {
      if (m.error) reject(new Error(m.error));
      else if (m.ready) resolve(m as never);
      else if (m.id !== undefined) {
        pending.get(m.id)?.(m.value);
        pending.delete(m.id);
      }
    });
  });
  const call = <T>(op: 'stats' | 'resetStats' | 'now' | 'close'): Promise<T> =>
    new Promise((resolve) => {
      const id = nextId++;
      pending.set(id, resolve as (v: unknown) => void);
      worker.postMessage({ id, op });
    });
  log(`loaded OpenEMR stand-in (worker thread): ${fmt(ready.counts.Patient ?? 0)} Patients, ${fmt(ready.counts.Observation ?? 0)} Observations in ${fmt(ready.loadMs / 1000, 1)} s`);
  const env = connectorSettings({ openemr: ready, ahds, entra });
  return {
    entra,
    ahds,
    env,
    openemr: { stats: () => call('stats'), resetStats: () => call('resetStats'), now: () => call('now') },
    async close() {
      await call('close').catch(() => undefined);
      await worker.terminate();
      await ahds.close();
      await entra.close();
    },
  };
}

// ------------------------------------------------------------------------------------------- (a)

async function naiveLoop(stack: BenchStack, templates: Templates, planned: GeneratedPatient[], env: Record<string, string>, faults: FaultProfile, sample: number) {
  // A fresh AHDS stand-in, so (b) starts from an empty service.
  const ahds = await startAhdsStandIn({ entra: stack.entra, faults });
  try {
    const connector = await createConnector(loadConfig({ ...env, AHDS_FHIR_URL: ahds.fhirUrl }));
    const ids: Array<{ type: 'Patient' | 'Observation'; id: string }> = [];
    for (const r of allResources(templates, planned)) {
      if (ids.length >= sample) break;
      ids.push({ type: r.resourceType as 'Patient' | 'Observation', id: r.id });
    }
    // Token fetches are not part of the steady state: warm both sides up first.
    await connector.reader.getPatient(planned[0]!.patient.id);
    await connector.writer.read('Patient', planned[0]!.patient.id);
    log(`(a) naive loop over ${ids.length} resources: read one, PUT one, wait ...`);
    const t = performance.now();
    let failed = 0;
    for (const { type, id } of ids) {
      const resource = type === 'Patient' ? await connector.reader.getPatient(id) : await connector.reader.getObservation(id);
      const mapped = connector.mapper.map(resource);
      if (!mapped.ok) {
        failed++;
        continue;
      }
      const result = await connector.writer.put(mapped.resource);
      if (result.outcome === 'failed') failed++;
    }
    const seconds = (performance.now() - t) / 1000;
    const rate = ids.length / seconds;
    log(`(a) ${ids.length} resources in ${fmt(seconds, 1)} s: ${fmt(rate, 1)} resources/s${failed ? ` (${failed} failed)` : ''}`);
    return { resources: ids.length, seconds, rate };
  } finally {
    await ahds.close();
  }
}

// ------------------------------------------------------------------------------------------- (b)

function runConnector(env: Record<string, string>): Promise<ConnectorRunReport> {
  return new Promise((resolve, reject) => {
    const heapMb = Math.floor(num('connector-heap-mb'));
    const nodeArgs = [...(heapMb > 0 ? [`--max-old-space-size=${heapMb}`] : []), ...String(opts['connector-node-args'] ?? '').split(/\s+/).filter(Boolean)];
    const child = spawn(process.execPath, [...nodeArgs, path.join(__dirname, 'connector-run.js')], {
      env: { ...process.env, ...env, BENCH_REEXEC: '' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line.startsWith('{')) reject(new Error(`connector run exited with ${code}: ${out.slice(0, 2000)}`));
      else resolve(JSON.parse(line) as ConnectorRunReport);
    });
  });
}

function summariseProfile(samples: number[]): string {
  if (samples.length <= 12) return samples.join(' ');
  const step = samples.length / 12;
  return Array.from({ length: 12 }, (_, i) => samples[Math.floor(i * step)]).join(' ') + ` ... ${samples[samples.length - 1]}`;
}

// ------------------------------------------------------------------------------------------- (c)

interface RawLevel {
  concurrency: number;
  resources: number;
  seconds: number;
  rate: number;
}
interface RawResult {
  levels: RawLevel[];
  best: RawLevel;
}

async function rawLimit(stack: BenchStack, templates: Templates, planned: GeneratedPatient[], config: ReturnType<typeof loadConfig>, faults: FaultProfile, levels: number[], perLevel: number): Promise<RawResult> {
  // Same data, mapped by the connector's own mapper, in bundles as the writer builds them; each
  // level gets its own slice so every entry is a real create, on a fresh stand-in.
  const mapper = createResourceMapper(mappingOptions(config));
  const total = Math.min(perLevel * levels.length, planned.reduce((n, p) => n + 1 + p.observations, 0));
  const slice = Math.floor(total / levels.length);
  log(`(c) raw limit: building ${fmt(slice * levels.length)} mapped resources into ${config.ahds.batchSize}-entry bundles ...`);
  const mapped: SyncedResource[] = [];
  for (const r of allResources(templates, planned)) {
    if (mapped.length >= slice * levels.length) break;
    const m = mapper.map(r as SyncedResource);
    if (m.ok) mapped.push(m.resource);
  }
  const ahds = await startAhdsStandIn({ entra: stack.entra, faults });
  try {
    const token = await stack.entra.issueToken(stack.entra.clientId, ahds.audience);
    const result: RawLevel[] = [];
    for (let i = 0; i < levels.length; i++) {
      const part = mapped.slice(i * slice, (i + 1) * slice);
      const bodies = planBatches(part as Array<SyncedResource & { id: string }>, config.ahds.batchSize).map((batch) =>
        canonicalJson({ resourceType: 'Bundle', type: 'batch', entry: batch.map((resource) => ({ resource, request: { method: 'PUT', url: `${resource.resourceType}/${resource.id}` } })) }),
      );
      const level = await postAll(ahds.fhirUrl, token, bodies, levels[i]!);
      const stats = ahds.stats();
      const ok = Object.entries(stats.byEntryStatus).filter(([s]) => s.startsWith('2')).reduce((n, [, c]) => n + c, 0);
      const rate = part.length / level.seconds;
      result.push({ concurrency: levels[i]!, resources: part.length, seconds: level.seconds, rate });
      log(`(c) concurrency ${String(levels[i]).padStart(3)}: ${fmt(part.length)} resources in ${fmt(level.seconds, 1)} s: ${fmt(rate)} resources/s (${ok === stats.entries ? 'all entries 2xx' : `entries ${JSON.stringify(stats.byEntryStatus)}`})`);
      ahds.resetStats();
    }
    const best = result.reduce((a, b) => (b.rate > a.rate ? b : a));
    return { levels: result, best };
  } finally {
    await ahds.close();
  }
}

/** Posts pre-serialised bundles with `concurrency` requests in flight on keep-alive connections. */
async function postAll(fhirUrl: string, token: string, bodies: string[], concurrency: number): Promise<{ seconds: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const url = new URL(fhirUrl);
  let next = 0;
  const post = (body: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = http.request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          path: '/',
          method: 'POST',
          headers: {
            Authorization: `Bearer ${token}`,
            'Content-Type': 'application/fhir+json',
            Accept: 'application/fhir+json',
            'x-bundle-processing-logic': 'parallel',
            Prefer: 'return=minimal',
            'Content-Length': Buffer.byteLength(body),
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`bundle answered ${res.statusCode}`))));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const t = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < bodies.length) await post(bodies[next++]!);
    }),
  );
  agent.destroy();
  return { seconds: (performance.now() - t) / 1000 };
}

// ------------------------------------------------------------------------------------------- verify

function verify(ahds: AhdsStandIn, templates: Templates, planned: GeneratedPatient[]) {
  let expected = 0;
  let found = 0;
  const missing: string[] = [];
  for (const r of allResources(templates, planned)) {
    expected++;
    const head = ahds.store.head(r.resourceType, r.id);
    if (head && !head.deleted) found++;
    else if (missing.length < 10) missing.push(`${r.resourceType}/${r.id}`);
  }
  return { expected, found, missing };
}

function printTable(r: {
  resources: number;
  naive?: { resources: number; rate: number };
  connector: { rate: number; seconds: number; peakRssMb: number; cpuMsPerResource: number; limiterPeak: number };
  raw?: { rate: number; concurrency: number };
  ratios: { bOverA: number | null; bOverC: number | null };
}): void {
  const rows: Array<[string, string]> = [
    ['(a) naive loop', r.naive ? `${fmt(r.naive.rate, 1)} resources/s (${r.naive.resources} resources)` : 'skipped'],
    ['(b) connector full sync', `${fmt(r.connector.rate)} resources/s (${fmt(r.resources)} resources in ${fmt(r.connector.seconds, 1)} s, limiter peak ${r.connector.limiterPeak})`],
    ['(c) raw AHDS stand-in limit', r.raw ? `${fmt(r.raw.rate)} resources/s (concurrency ${r.raw.concurrency})` : 'skipped'],
    ['b / a', r.ratios.bOverA === null ? '-' : `${fmt(r.ratios.bOverA, 1)}x (target >= 30x)`],
    ['b / c', r.ratios.bOverC === null ? '-' : `${fmt(r.ratios.bOverC, 2)} (target >= 0.8)`],
    ['connector peak RSS', `${fmt(r.connector.peakRssMb)} MB`],
    ['connector CPU per resource', `${fmt(r.connector.cpuMsPerResource, 3)} ms`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  log('');
  for (const [k, v] of rows) log(`${k.padEnd(w)}  ${v}`);
  log('');
}

main().catch((error: unknown) => {
  log(`bench failed: ${(error as Error)?.stack ?? String(error)}`);
  process.exit(1);
});
