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
import { planBatches } from '../../src/ahds/batching';
import { BATCH_HEADERS, batchBody } from '../../src/ahds/writer';
import { commandLine } from '../../src/cli/args';
import { loadConfig } from '../../src/config/load';
import { DEFAULT_RESOURCE_TYPES, orderedTypes } from '../../src/sync/resource-types';
import { createConnector } from '../../src/connector';
import type { SyncedResource } from '../../src/fhir/types';
import { createResourceMapper } from '../../src/mapping';
import { BatchSink } from '../../src/sync/batch-sink';
import { connectorSettings } from '../../stack';
import { mappingOptions } from '../../src/connector';
import type { AhdsStats } from '../../stack/ahds';
import type { FaultProfile } from '../../stack/faults';
import type { RequestStatsSnapshot } from '../../stack/openemr/request-stats';
import type { ConnectorRunReport } from './connector-run';
import {
  allResources,
  directoryOf,
  loadTemplates,
  namedUuid,
  planOf,
  type BenchDataPlan,
  type GeneratedPatient,
  type Templates,
} from './data';
import type { AhdsReady, OpenEmrReady, VerifyResult } from './stand-in-process';
import { openemrLoadBench } from './openemr-load';
import { placeOnCpus, startStandInProcess, type CpuPlacement, type StandInProcess } from './stand-in-processes';

const USAGE = `Usage: npm run bench -- [options]
  A mixed data set of every carried type (SYNC_RESOURCE_TYPES, or --set SYNC_RESOURCE_TYPES=...):
  Observations as counted below, the other patient-scoped types at the sample data's rate per Patient,
  and a practice's directory: a Practitioner per 500 Patients, a facility (Organization and Location)
  per 5 Practitioners, a "Home Address" Location per user and per Patient, as OpenEMR serves them.
  --observations N       Observations to generate (default 100000)
  --patients N           Patients (default observations/100, at least 1)
  --openemr-latency MS   added to every OpenEMR request (default 30)
  --ahds-latency MS      added to every AHDS request (default 40)
  --entry-cost MS        added per bundle entry by AHDS (default 1)
  --naive-sample N       resources written by the naive loop (default 300)
  --rounds N             (c) and (b) measured N times in turns; the medians count
                         (default 3, or 1 above 200,000 Observations)
  --raw-sample N         resources posted per concurrency level for the raw limit (default 25000)
  --raw-levels LIST      concurrency levels tried for the raw limit (default 4,8,16,32)
  --seed N               data seed (default 42)
  --set KEY=VALUE        extra connector setting for the connector run (repeatable), e.g. --set AHDS_BATCH_SIZE=500
  --connector-heap-mb N   V8 heap cap of the connector process (default 256; 0: V8's default for this host)
  --connector-node-args=ARGS  more node flags for the connector process (e.g. --cpu-prof)
  --cpus split|shared    split (default): the AHDS stand-in on CPUs of its own, as the FHIR service
                         is in Azure; shared: every process on every CPU
  --capacity N           (d) over-driven: requests the capped AHDS stand-in admits at once (default 6)
  --over-levels LIST     (d) fixed concurrencies compared with the connector's limiter (default 2,4,6,8,12)
  --over-sample N        (d) resources written per run (default 8000)
  --over-batch N         (d) entries per bundle (default 50: many bundles from few resources)
  --skip-naive, --skip-raw, --skip-incremental, --skip-over
  --skip-openemr-load    skip the OpenEMR load figures (requests per incremental run and reconcile)
  --help`;

const parsed = commandLine(
  process.argv.slice(2),
  {
    observations: { type: 'string', default: '100000' },
    patients: { type: 'string' },
    'openemr-latency': { type: 'string', default: '30' },
    'ahds-latency': { type: 'string', default: '40' },
    'entry-cost': { type: 'string', default: '1' },
    'naive-sample': { type: 'string', default: '300' },
    rounds: { type: 'string' },
    'raw-sample': { type: 'string', default: '25000' },
    'raw-levels': { type: 'string', default: '4,8,16,32' },
    seed: { type: 'string', default: '42' },
    set: { type: 'string', multiple: true, default: [] },
    'skip-naive': { type: 'boolean', default: false },
    'skip-raw': { type: 'boolean', default: false },
    'skip-incremental': { type: 'boolean', default: false },
    'skip-openemr-load': { type: 'boolean', default: false },
    'skip-over': { type: 'boolean', default: false },
    capacity: { type: 'string', default: '6' },
    'over-levels': { type: 'string', default: '2,4,6,8,12' },
    'over-sample': { type: 'string', default: '8000' },
    'over-batch': { type: 'string', default: '50' },
    'connector-node-args': { type: 'string', default: '' },
    'connector-heap-mb': { type: 'string', default: '256' },
    cpus: { type: 'string', default: 'split' },
  },
  USAGE,
);
if (typeof parsed === 'number') process.exit(parsed);
const opts = parsed;

/** A bad option value: one line and the usage exit code, as for an unknown option. */
function usageError(line: string): never {
  process.stderr.write(`${line} Run with --help for the options.\n`);
  process.exit(64);
}

const num = (name: keyof typeof opts): number => {
  const v = Number(opts[name]);
  if (!Number.isFinite(v) || v < 0) usageError(`Option --${name} must be a non-negative number.`);
  return v;
};

const log = (line: string): void => void process.stderr.write(`${line}\n`);
const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function main(): Promise<void> {
  const observations = Math.floor(num('observations'));
  const patients = Math.max(1, Math.floor(opts.patients !== undefined ? num('patients') : observations / 100));
  const cpuMode = String(opts.cpus);
  if (cpuMode !== 'split' && cpuMode !== 'shared') usageError('Option --cpus must be split or shared.');
  const placement = placeOnCpus(cpuMode);

  const seed = Math.floor(num('seed'));
  const profile = {
    openemr: { latencyMs: num('openemr-latency') } satisfies FaultProfile,
    ahds: { latencyMs: num('ahds-latency'), perEntryLatencyMs: num('entry-cost') } satisfies FaultProfile,
  };
  const tuning = Object.fromEntries(
    (opts.set ?? []).map((kv) => {
      const eq = kv.indexOf('=');
      if (eq < 1) usageError('Option --set wants KEY=VALUE.');
      return [kv.slice(0, eq), kv.slice(eq + 1)];
    }),
  );

  // The carried types: the data set holds each of them (those the sample data has), mixed as the sample is.
  const types = orderedTypes((tuning.SYNC_RESOURCE_TYPES ?? DEFAULT_RESOURCE_TYPES).split(',').map((t) => t.trim())).map((t) => t.type);
  log(
    `bench: ${fmt(patients)} Patients, ${fmt(observations)} Observations, seed ${seed}, carried types ${types.join(', ')}; latency OpenEMR ${profile.openemr.latencyMs} ms/request, AHDS ${profile.ahds.latencyMs} ms/request + ${profile.ahds.perEntryLatencyMs} ms/entry; ${os.cpus().length} CPUs, ${placement.note}`,
  );
  const templates = loadTemplates();
  const plan: BenchDataPlan = { patients, observations, seed, types };
  const planned = planOf(templates, plan);
  const generated: Record<string, number> = {};
  for (const r of directoryOf(templates, planned)) generated[r.resourceType] = (generated[r.resourceType] ?? 0) + 1;
  for (const p of planned) {
    generated.Patient = (generated.Patient ?? 0) + 1;
    generated.Observation = (generated.Observation ?? 0) + p.observations;
    for (const [type, n] of Object.entries(p.others)) generated[type] = (generated[type] ?? 0) + n;
  }
  const totalResources = Object.values(generated).reduce((a, b) => a + b, 0);
  log(
    `bench data: ${Object.entries(generated)
      .map(([t, n]) => `${fmt(n)} ${t}`)
      .join(', ')} (${fmt(totalResources)} resources)`,
  );

  const stack = await startBenchStack(plan, profile, placement);
  try {
    const connectorEnv: Record<string, string> = { ...stack.envFor(stack.ahds), ...tuning };
    const config = loadConfig(connectorEnv);

    const rounds = opts.rounds === undefined ? (observations > 200_000 ? 1 : 3) : Math.max(1, Math.floor(num('rounds')));
    const cores = os.cpus().length;

    // (a) the naive loop: read one, PUT one, wait.
    let naive: { resources: number; seconds: number; rate: number } | undefined;
    if (!opts['skip-naive']) naive = await naiveLoop(stack, templates, planned, tuning, Math.floor(num('naive-sample')));

    // (c) the raw limit and (b) the connector's full sync, taken in turns so that a slow spell of
    // the host weighs on both; with --rounds N the medians count. Round 1 writes into the stand-in
    // that is verified at the end; later rounds each get a fresh, empty one.
    const raws: RawResult[] = [];
    const ends: RawLevel[] = [];
    const syncs: SyncRound[] = [];
    const levels = String(opts['raw-levels'])
      .split(',')
      .map(Number)
      .filter((n) => n > 0);
    const slices = opts['skip-raw'] ? undefined : rawSlices(templates, planned, config, levels.length, Math.floor(num('raw-sample')));
    for (let round = 1; round <= rounds; round++) {
      if (rounds > 1) log(`-- round ${round} of ${rounds}`);
      if (slices) raws.push(await rawLimit(stack, slices, levels));
      const target = round === 1 ? stack.ahds : await stack.freshAhds();
      try {
        syncs.push(await connectorRound(stack, target, { ...stack.envFor(target), ...tuning }, cores));
        if (slices) ends.push(await rawAtEnd(target, slices, raws[raws.length - 1]!.best.concurrency));
      } finally {
        if (target !== stack.ahds) await target.close();
      }
    }
    const bRate = median(syncs.map((r) => r.rate));
    const rawRate = raws.length ? median(raws.map((r) => r.best.rate)) : 0;
    // The best level of the round nearest the median, so the concurrency shown goes with the rate shown.
    const nearest = raws.reduce<RawResult | undefined>(
      (a, r) => (!a || Math.abs(r.best.rate - rawRate) < Math.abs(a.best.rate - rawRate) ? r : a),
      undefined,
    );
    const raw = nearest
      ? {
          best: { rate: rawRate, concurrency: nearest.best.concurrency },
          levels: raws[0]!.levels,
          rounds: raws.map((r) => Math.round(r.best.rate)),
        }
      : undefined;
    const endRate = ends.length ? median(ends.map((e) => e.rate)) : undefined;
    const peakRssKb = Math.max(...syncs.map((r) => r.run.maxRssKb));
    const cpuMsPerResource = median(syncs.map((r) => r.cpuMsPerResource));
    if (rounds > 1) {
      log(`(b) per round: ${syncs.map((r) => fmt(r.rate)).join(', ')} resources/s; median ${fmt(bRate)}`);
      if (raw) {
        log(`(c) per round (best level): ${raw.rounds.map((r) => fmt(r)).join(', ')} resources/s; median ${fmt(raw.best.rate)}`);
        log(
          `b / c per round: ${syncs.map((r, i) => fmt(r.rate / raws[i]!.best.rate, 2)).join(', ')}; of the medians ${fmt(bRate / raw.best.rate, 2)}`,
        );
        log(
          `(c) after (b) per round: ${ends.map((e) => fmt(e.rate)).join(', ')} resources/s; b / c after (b): ${syncs.map((r, i) => fmt(r.rate / ends[i]!.rate, 2)).join(', ')}`,
        );
      }
    }

    // (d) over-driven: a stand-in admitting fewer requests than the connector's ceiling.
    const overDriven = opts['skip-over'] ? undefined : await overDrivenCase(stack, templates, planned, config, { ...tuning });

    // Incremental run with no changes: what does it cost?
    let incremental: { openemrRequests: number; ahdsRequests: number; tokenRequests: number; read: number; wallMs: number } | undefined;
    if (!opts['skip-incremental']) {
      await stack.openemr.call('resetStats');
      await stack.ahds.call('resetStats');
      const entraBefore = await stack.ahds.call<number>('tokenRequests');
      const since = new Date((await stack.openemr.call<number>('now')) - 5 * 60_000).toISOString();
      const inc = await runConnector({ ...connectorEnv, BENCH_SINCE: since });
      const incStats = await stack.openemr.call<RequestStatsSnapshot>('stats');
      incremental = {
        openemrRequests: incStats.requests,
        ahdsRequests: (await stack.ahds.call<AhdsStats>('stats')).requests,
        tokenRequests: (await stack.ahds.call<number>('tokenRequests')) - entraBefore,
        read: inc.read,
        wallMs: inc.wallMs,
      };
      log(
        `incremental run with no changes (window since ${since}): read ${inc.read}, OpenEMR requests ${incremental.openemrRequests} (${JSON.stringify(incStats.byRoute)}), AHDS requests ${incremental.ahdsRequests}, Entra token requests ${incremental.tokenRequests}`,
      );
    }

    // Correctness: the AHDS stand-in holds every generated resource.
    const verified = await stack.ahds.call<VerifyResult>('verify', plan);
    log(
      `verify: AHDS stand-in holds ${fmt(verified.found)} of ${fmt(verified.expected)} generated resources${verified.missing.length ? `; missing e.g. ${verified.missing.slice(0, 3).join(', ')}` : ''}`,
    );

    const result = {
      observations,
      patients,
      resources: totalResources,
      generated,
      cpus: { count: cores, placement: placement.mode, ahds: placement.ahds ?? null, rest: placement.rest ?? null },
      latency: { openemrMs: profile.openemr.latencyMs, ahdsMs: profile.ahds.latencyMs, entryMs: profile.ahds.perEntryLatencyMs },
      settings: {
        batchSize: config.ahds.batchSize,
        maxConcurrency: config.ahds.maxConcurrency,
        initialConcurrency: config.ahds.initialConcurrency,
        readConcurrency: config.openemr.readConcurrency,
      },
      naive: naive && { resources: naive.resources, rate: round(naive.rate, 1) },
      rounds,
      connector: {
        rate: Math.round(bRate),
        rounds: syncs.map((r) => Math.round(r.rate)),
        seconds: round(totalResources / bRate, 1),
        byType: perType(syncs),
        peakRssMb: Math.round(peakRssKb / 1024),
        heapUsedPeakMb: Math.max(...syncs.map((r) => r.run.heapUsedPeakMb)),
        cpuMsPerResource: round(cpuMsPerResource, 3),
        limiterPeak: Math.max(...syncs.map((r) => r.run.limiterPeak)),
        cpuMs: syncs[0]!.cpuMs,
        ahdsStandInCpuMs: syncs[0]!.ahdsCpuMs,
        openemrStandInCpuMs: syncs[0]!.openemrCpuMs,
        hostBusyPct: syncs[0]!.hostBusyPct,
        heapCapMb: Math.floor(num('connector-heap-mb')) || null,
        status: syncs.find((r) => r.run.status !== 'ok')?.run.status ?? 'ok',
        failed: syncs.reduce((n, r) => n + r.run.failed, 0),
        mbPerSecond: {
          toAhds: round(median(syncs.map((r) => r.bytesPerSecond.toAhds)) / 1048576, 1),
          fromAhds: round(median(syncs.map((r) => r.bytesPerSecond.fromAhds)) / 1048576, 1),
        },
      },
      overDriven,
      raw: raw && {
        rate: Math.round(raw.best.rate),
        concurrency: raw.best.concurrency,
        rounds: raw.rounds,
        bOverCPerRound: syncs.map((r, i) => round(r.rate / raws[i]!.best.rate, 2)),
        levels: raw.levels.map((l) => ({ concurrency: l.concurrency, rate: Math.round(l.rate) })),
        afterB: endRate === undefined ? null : { rate: Math.round(endRate), rounds: ends.map((e) => Math.round(e.rate)) },
      },
      ratios: {
        bOverA: naive ? round(bRate / naive.rate, 1) : null,
        bOverC: raw ? round(bRate / raw.best.rate, 2) : null,
        bOverCAfterB: endRate ? round(bRate / endRate, 2) : null,
      },
      incremental,
      verified: verified.found === verified.expected,
    };
    printTable(result);
    const openemrLoad = opts['skip-openemr-load'] ? undefined : await openemrLoadBench(log);
    process.stdout.write(`${JSON.stringify({ ...result, ...(openemrLoad ? { openemrLoad } : {}) })}\n`);
    if (!result.verified || result.connector.status !== 'ok') process.exitCode = 1;
  } finally {
    await stack.close();
  }
}

interface SyncRound {
  run: ConnectorRunReport;
  rate: number;
  bytesPerSecond: { toAhds: number; fromAhds: number };
  cpuMsPerResource: number;
  cpuMs: number;
  ahdsCpuMs: number;
  openemrCpuMs: number;
  hostBusyPct: number;
}

/**
 * Per type, over the rounds (medians): resources written and that type's share of the run's
 * throughput (its resources over the whole run's wall time: the types are read and written
 * interleaved, page by page, so a type has no wall time of its own).
 */
function perType(syncs: SyncRound[]): Record<string, { written: number; perSecond: number; failed: number }> {
  const types = [...new Set(syncs.flatMap((r) => Object.keys(r.run.byType)))];
  return Object.fromEntries(
    types.map((type) => {
      const written = (r: SyncRound) => {
        const c = r.run.byType[type];
        return c ? c.created + c.updated + c.unchanged : 0;
      };
      return [
        type,
        {
          written: median(syncs.map(written)),
          perSecond: Math.round(median(syncs.map((r) => written(r) / (r.run.wallMs / 1000)))),
          failed: Math.max(...syncs.map((r) => r.run.byType[type]?.failed ?? 0)),
        },
      ];
    }),
  );
}

/** (b): one full sync by the connector in a child process, into `target`, with what it cost. */
async function connectorRound(
  stack: BenchStack,
  target: StandInProcess<AhdsReady>,
  env: Record<string, string>,
  cores: number,
): Promise<SyncRound> {
  await stack.openemr.call('resetStats');
  await target.call('resetStats');
  log('(b) connector full sync in a child process ...');
  const t = performance.now();
  const cpu0 = await standInsCpu(stack, target);
  const entryRates: number[] = [];
  let lastEntries = 0;
  const rateTimer = setInterval(() => {
    void target.call<AhdsStats>('stats').then(
      (s) => {
        entryRates.push(s.entries - lastEntries);
        lastEntries = s.entries;
      },
      () => undefined,
    );
  }, 1000);
  const run = await runConnector(env).finally(() => clearInterval(rateTimer));
  const seconds = (performance.now() - t) / 1000;
  const cpu1 = await standInsCpu(stack, target);
  const ahdsCpuMs = cpu1.ahds - cpu0.ahds;
  const openemrCpuMs = cpu1.openemr - cpu0.openemr;
  const cpuMs = run.cpuUserMs + run.cpuSystemMs;
  const hostBusy = (ahdsCpuMs + openemrCpuMs + cpu1.bench - cpu0.bench + cpuMs) / (seconds * 1000 * cores);
  const written = run.created + run.updated + run.unchanged;
  const rate = written / (run.wallMs / 1000);
  const oStats = await stack.openemr.call<RequestStatsSnapshot>('stats');
  const aStats = await target.call<AhdsStats>('stats');
  log(
    `(b) ${run.status}: ${fmt(written)} written (${fmt(run.created)} created, ${fmt(run.failed)} failed) in ${fmt(run.wallMs / 1000, 1)} s (child wall ${fmt(seconds, 1)} s): ${fmt(rate)} resources/s; peak RSS ${fmt(run.maxRssKb / 1024)} MB; limiter peak ${run.limiterPeak}; OpenEMR requests ${fmt(oStats.requests)}, AHDS requests ${fmt(aStats.requests)} (${fmt(aStats.entries)} entries; ${JSON.stringify(aStats.byEntryStatus)})`,
  );
  for (const [type, c] of Object.entries(run.byType))
    log(
      `    ${type}: ${fmt(c.created + c.updated + c.unchanged)} written, ${fmt(c.failed)} failed: ${fmt((c.created + c.updated + c.unchanged) / (run.wallMs / 1000))} ${type} resources/s of the run`,
    );
  log(
    `    bytes: to AHDS ${fmt(aStats.bytesIn / 1048576 / seconds, 1)} MB/s (${fmt(aStats.bytesIn / 1048576)} MB), from AHDS ${fmt(aStats.bytesOut / 1048576 / seconds, 1)} MB/s (${fmt(aStats.bytesOut / 1048576)} MB): full answers`,
  );
  log(
    `    CPU during (b): AHDS stand-in ${fmt(ahdsCpuMs / 1000, 1)} s (${fmt((ahdsCpuMs / 1000 / seconds) * 100)}% of a CPU), OpenEMR stand-in ${fmt(openemrCpuMs / 1000, 1)} s, connector ${fmt(cpuMs / 1000, 1)} s (${fmt((cpuMs / 1000 / seconds) * 100)}% of a CPU); host ${fmt(hostBusy * 100)}% busy (${cores} CPUs)`,
  );
  if (run.failures.length) log(`    failures: ${JSON.stringify(run.failures)}`);
  log(`    RSS profile (MB, every ${run.sampleMs} ms or coarser): ${summariseProfile(run.rssSamplesMb)}`);
  log(`    adaptive limit: ${summariseProfile(run.limitSamples)}`);
  log(`    AHDS entries per second: ${summariseProfile(entryRates)}`);
  if (process.env.BENCH_FULL_PROFILE) log(`    full: ${entryRates.join(' ')}`);
  return {
    run,
    rate,
    bytesPerSecond: { toAhds: aStats.bytesIn / seconds, fromAhds: aStats.bytesOut / seconds },
    cpuMsPerResource: cpuMs / Math.max(1, written),
    cpuMs,
    ahdsCpuMs: Math.round(ahdsCpuMs),
    openemrCpuMs: Math.round(openemrCpuMs),
    hostBusyPct: Math.round(hostBusy * 100),
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

async function standInsCpu(
  stack: BenchStack,
  ahdsProcess: StandInProcess<AhdsReady>,
): Promise<{ ahds: number; openemr: number; bench: number }> {
  const [ahds, openemr] = await Promise.all([ahdsProcess.cpuMs(), stack.openemr.cpuMs()]);
  const u = process.cpuUsage();
  return { ahds, openemr, bench: (u.user + u.system) / 1000 };
}

// ------------------------------------------------------------------------------------------- stack

interface BenchStack {
  openemr: StandInProcess<OpenEmrReady>;
  ahds: StandInProcess<AhdsReady>;
  /** Starts another, empty AHDS stand-in (with its own Entra) on the AHDS CPUs. */
  freshAhds(): Promise<StandInProcess<AhdsReady>>;
  /** Connector settings for the OpenEMR stand-in and the given AHDS stand-in. */
  envFor(ahds: StandInProcess<AhdsReady>): Record<string, string>;
  ahdsProfile: FaultProfile;
  placement: CpuPlacement;
  close(): Promise<void>;
}

/**
 * The local stack as startStack builds it (same stand-ins, same settings), except that each
 * stand-in runs in a process of its own (stand-in-process.ts), the AHDS one on CPUs of its own when
 * the placement is split, and there is no Azurite (a full sync keeps no state).
 */
async function startBenchStack(
  plan: BenchDataPlan,
  profile: { openemr: FaultProfile; ahds: FaultProfile },
  placement: CpuPlacement,
): Promise<BenchStack> {
  const freshAhds = (): Promise<StandInProcess<AhdsReady>> =>
    startStandInProcess<AhdsReady>(
      { role: 'ahds', faults: profile.ahds },
      { heapMb: 1024 + plan.observations * 0.01, cpus: placement.ahds },
    );
  const [openemr, ahds] = await Promise.all([
    startStandInProcess<OpenEmrReady>(
      { role: 'openemr', data: plan, faults: profile.openemr },
      { heapMb: 512 + plan.observations * 0.006, cpus: placement.rest },
    ),
    freshAhds(),
  ]);
  const ready = openemr.ready;
  log(
    `loaded OpenEMR stand-in (own process): ${Object.entries(ready.counts)
      .map(([type, n]) => `${fmt(n)} ${type}`)
      .join(', ')} in ${fmt(ready.loadMs / 1000, 1)} s`,
  );
  const envFor = (target: StandInProcess<AhdsReady>): Record<string, string> =>
    connectorSettings({ openemr: ready, ahds: target.ready, entra: target.ready.entra });
  return {
    openemr,
    ahds,
    freshAhds,
    envFor,
    ahdsProfile: profile.ahds,
    placement,
    async close() {
      await Promise.all([openemr.close(), ahds.close()]);
    },
  };
}

// ------------------------------------------------------------------------------------------- (a)

async function naiveLoop(
  stack: BenchStack,
  templates: Templates,
  planned: GeneratedPatient[],
  tuning: Record<string, string>,
  sample: number,
) {
  // A fresh AHDS stand-in, so (b) starts from an empty service.
  const ahds = await stack.freshAhds();
  try {
    const connector = await createConnector(loadConfig({ ...stack.envFor(ahds), ...tuning }));
    const ids: Array<{ type: string; id: string }> = [];
    for (const r of allResources(templates, planned)) {
      if (ids.length >= sample) break;
      ids.push({ type: r.resourceType, id: r.id });
    }
    // Token fetches are not part of the steady state: warm both sides up first.
    await connector.reader.getPatient(planned[0]!.patient.id);
    await connector.writer.read('Patient', planned[0]!.patient.id);
    log(`(a) naive loop over ${ids.length} resources: read one, PUT one, wait ...`);
    const t = performance.now();
    let failed = 0;
    for (const { type, id } of ids) {
      const resource = await connector.reader.getResource(type, id);
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
    const nodeArgs = [
      ...(heapMb > 0 ? [`--max-old-space-size=${heapMb}`] : []),
      ...String(opts['connector-node-args'] ?? '')
        .split(/\s+/)
        .filter(Boolean),
    ];
    const child = spawn(process.execPath, [...nodeArgs, path.join(__dirname, 'connector-run.js')], {
      env: { ...process.env, ...env },
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

interface RawSlices {
  /** Per concurrency level: its own bundles, so every entry is a real create. */
  bodies: string[][];
  resources: number[];
  /** The first slice under other ids: creates again, posted into the stand-in (b) has just filled. */
  endBodies: string[];
  /** The mapped resources of each slice (for the connector's own writer in (d)). */
  parts: SyncedResource[][];
}

/**
 * The data of (c), built once for every round: the same resources, mapped by the connector's own
 * mapper, pre-serialised into bundles as the writer builds them, one slice per concurrency level.
 */
function rawSlices(
  templates: Templates,
  planned: GeneratedPatient[],
  config: ReturnType<typeof loadConfig>,
  levels: number,
  perLevel: number,
): RawSlices {
  const mapper = createResourceMapper(mappingOptions(config));
  const total = Math.min(
    perLevel * levels,
    planned.reduce((n, p) => n + 1 + p.observations, 0),
  );
  const slice = Math.floor(total / levels);
  log(`(c) raw limit: building ${fmt(slice * levels)} mapped resources into ${config.ahds.batchSize}-entry bundles ...`);
  const mapped: SyncedResource[] = [];
  for (const r of allResources(templates, planned)) {
    if (mapped.length >= slice * levels) break;
    const m = mapper.map(r as SyncedResource);
    if (m.ok) mapped.push(m.resource);
  }
  const bundles = (part: SyncedResource[]): string[] =>
    planBatches(part as Array<SyncedResource & { id: string }>, config.ahds.batchSize).map(batchBody);
  const out: RawSlices = { bodies: [], resources: [], endBodies: [], parts: [] };
  for (let i = 0; i < levels; i++) {
    const part = mapped.slice(i * slice, (i + 1) * slice);
    out.parts.push(part);
    out.resources.push(part.length);
    out.bodies.push(bundles(part));
  }
  out.endBodies = bundles(mapped.slice(0, slice).map((r) => ({ ...r, id: namedUuid('raw-end', r.resourceType, r.id ?? '') })));
  return out;
}

/** (c): the slices posted straight to a fresh AHDS stand-in, one concurrency level after another. */
async function rawLimit(stack: BenchStack, slices: RawSlices, levels: number[]): Promise<RawResult> {
  const ahds = await stack.freshAhds();
  try {
    const token = await ahds.call<string>('issueToken');
    const result: RawLevel[] = [];
    for (let i = 0; i < levels.length; i++) {
      const resources = slices.resources[i]!;
      const cpu0 = await ahds.cpuMs();
      const level = await postAll(ahds.ready.fhirUrl, token, slices.bodies[i]!, levels[i]!);
      const cpuMs = (await ahds.cpuMs()) - cpu0;
      const stats = await ahds.call<AhdsStats>('stats');
      const ok = Object.entries(stats.byEntryStatus)
        .filter(([s]) => s.startsWith('2'))
        .reduce((n, [, c]) => n + c, 0);
      const rate = resources / level.seconds;
      result.push({ concurrency: levels[i]!, resources, seconds: level.seconds, rate });
      log(
        `(c) concurrency ${String(levels[i]).padStart(3)}: ${fmt(resources)} resources in ${fmt(level.seconds, 1)} s: ${fmt(rate)} resources/s; AHDS stand-in ${fmt((cpuMs / 1000 / level.seconds) * 100)}% of a CPU (${ok === stats.entries ? 'all entries 2xx' : `entries ${JSON.stringify(stats.byEntryStatus)}`})`,
      );
      await ahds.call('resetStats');
    }
    const best = result.reduce((a, b) => (b.rate > a.rate ? b : a));
    return { levels: result, best };
  } finally {
    await ahds.close();
  }
}

/**
 * (c) again, at the end of a (b) round: the first slice under new ids, posted at the round's best
 * level into the stand-in (b) has just filled. (b) meets a store growing from empty to every
 * resource, (c) a fresh one; with a million resources in its heap the stand-in slows down (garbage
 * collection), which this shows.
 */
async function rawAtEnd(target: StandInProcess<AhdsReady>, slices: RawSlices, concurrency: number): Promise<RawLevel> {
  const token = await target.call<string>('issueToken');
  const held = await target.call<number>('stored');
  const resources = slices.resources[0]!;
  const cpu0 = await target.cpuMs();
  const level = await postAll(target.ready.fhirUrl, token, slices.endBodies, concurrency);
  const cpuMs = (await target.cpuMs()) - cpu0;
  const rate = resources / level.seconds;
  log(
    `(c) again after (b), into the stand-in holding ${fmt(held)} resources, concurrency ${concurrency}: ${fmt(resources)} resources in ${fmt(level.seconds, 1)} s: ${fmt(rate)} resources/s; AHDS stand-in ${fmt((cpuMs / 1000 / level.seconds) * 100)}% of a CPU`,
  );
  return { concurrency, resources, seconds: level.seconds, rate };
}

/**
 * Posts pre-serialised bundles with `concurrency` requests in flight on keep-alive connections. A
 * bundle answered 429 (an over-driven stand-in) is posted again after the wait the answer asks.
 */
async function postAll(
  fhirUrl: string,
  token: string,
  bodies: string[],
  concurrency: number,
): Promise<{ seconds: number; throttled: number }> {
  let throttled = 0;
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
            ...BATCH_HEADERS,
            Accept: 'application/fhir+json',
            'Content-Length': Buffer.byteLength(body),
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) resolve();
            else if (res.statusCode === 429) {
              throttled++;
              const wait = Number(res.headers['x-ms-retry-after-ms'] ?? 1000);
              setTimeout(() => post(body).then(resolve, reject), wait);
            } else reject(new Error(`bundle answered ${res.statusCode}`));
          });
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
  return { seconds: (performance.now() - t) / 1000, throttled };
}

// ------------------------------------------------------------------------------------------- (d)

interface OverDriven {
  capacity: number;
  ceiling: number;
  fixed: Array<{ concurrency: number; rate: number; throttledPct: number }>;
  best: { concurrency: number; rate: number };
  connector: {
    rate: number;
    throttledPct: number;
    bundles: number;
    limitMin: number;
    limitMax: number;
    limitFinal: number;
    mbPerSecond: { toAhds: number; fromAhds: number };
  };
  ratio: number;
}

/**
 * (d): an AHDS stand-in whose request cap (fhir-server ThrottlingMiddleware) is below the connector's
 * ceiling. Fixed concurrencies (a client that honours the asked wait) against the connector's own
 * writer and adaptive limiter, each writing its own slice of mapped resources as creates.
 */
async function overDrivenCase(
  stack: BenchStack,
  templates: Templates,
  planned: GeneratedPatient[],
  config: ReturnType<typeof loadConfig>,
  tuning: Record<string, string>,
): Promise<OverDriven> {
  const capacity = Math.max(1, Math.floor(num('capacity')));
  const levels = String(opts['over-levels'])
    .split(',')
    .map(Number)
    .filter((n) => n > 0);
  const batchSize = Math.min(500, Math.max(1, Math.floor(num('over-batch'))));
  const slices = rawSlices(
    templates,
    planned,
    { ...config, ahds: { ...config.ahds, batchSize } },
    levels.length + 1,
    Math.floor(num('over-sample')),
  );
  const capped = await startStandInProcess<AhdsReady>(
    { role: 'ahds', faults: stack.ahdsProfile, capacity },
    { heapMb: 1024, cpus: stack.placement.ahds },
  );
  try {
    const token = await capped.call<string>('issueToken');
    const fixed: OverDriven['fixed'] = [];
    for (let i = 0; i < levels.length; i++) {
      await capped.call('resetStats');
      const level = await postAll(capped.ready.fhirUrl, token, slices.bodies[i]!, levels[i]!);
      const bundles = slices.bodies[i]!.length + level.throttled;
      const rate = slices.resources[i]! / level.seconds;
      fixed.push({ concurrency: levels[i]!, rate, throttledPct: (100 * level.throttled) / bundles });
      log(
        `(d) fixed concurrency ${String(levels[i]).padStart(3)} against capacity ${capacity}: ${fmt(rate)} resources/s; ${fmt((100 * level.throttled) / bundles, 1)}% of bundle requests answered 429`,
      );
    }
    const best = fixed.reduce((a, b) => (b.rate > a.rate ? b : a));
    // No storage in the bench: this process's limiter alone faces the capped stand-in.
    const connector = await createConnector(loadConfig({ ...stack.envFor(capped), ...tuning, AHDS_BATCH_SIZE: String(batchSize) }), {
      state: null,
    });
    const writer = connector.writer;
    const part = slices.parts[levels.length]!;
    await capped.call('resetStats');
    const limits: number[] = [];
    const sampler = setInterval(() => limits.push(writer.limiter.limit), 250);
    const t = performance.now();
    const sink = new BatchSink(writer, batchSize, () => undefined);
    for (const r of part) await sink.add(r);
    await sink.flush();
    const seconds = (performance.now() - t) / 1000;
    clearInterval(sampler);
    const stats = await capped.call<AhdsStats>('stats');
    const bundles = (stats.byStatus['200'] ?? 0) + stats.capacityThrottled;
    const rate = part.length / seconds;
    const throttledPct = (100 * stats.capacityThrottled) / Math.max(1, bundles);
    const result: OverDriven = {
      capacity,
      ceiling: config.ahds.maxConcurrency,
      fixed: fixed.map((f) => ({ concurrency: f.concurrency, rate: Math.round(f.rate), throttledPct: round(f.throttledPct, 1) })),
      best: { concurrency: best.concurrency, rate: Math.round(best.rate) },
      connector: {
        rate: Math.round(rate),
        throttledPct: round(throttledPct, 2),
        bundles,
        limitMin: Math.min(...limits, writer.limiter.limit),
        limitMax: Math.max(...limits, writer.limiter.limit),
        limitFinal: writer.limiter.limit,
        mbPerSecond: { toAhds: round(stats.bytesIn / 1048576 / seconds, 1), fromAhds: round(stats.bytesOut / 1048576 / seconds, 1) },
      },
      ratio: round(rate / best.rate, 2),
    };
    log(
      `(d) connector (ceiling ${config.ahds.maxConcurrency}) against capacity ${capacity}: ${fmt(rate)} resources/s = ${fmt(result.ratio, 2)} of the best fixed (${fmt(best.rate)} at ${best.concurrency}); ${fmt(throttledPct, 2)}% of ${fmt(bundles)} bundle requests answered 429; limit ${summariseProfile(limits)}; bytes to AHDS ${fmt(result.connector.mbPerSecond.toAhds, 1)} MB/s, from AHDS ${fmt(result.connector.mbPerSecond.fromAhds, 1)} MB/s`,
    );
    return result;
  } finally {
    await capped.close();
  }
}

// ------------------------------------------------------------------------------------------- report

function printTable(r: {
  resources: number;
  naive?: { resources: number; rate: number };
  connector: {
    byType: Record<string, { written: number; perSecond: number; failed: number }>;
    rate: number;
    seconds: number;
    peakRssMb: number;
    cpuMsPerResource: number;
    limiterPeak: number;
    mbPerSecond: { toAhds: number; fromAhds: number };
  };
  overDriven?: OverDriven;
  raw?: { rate: number; concurrency: number; afterB: { rate: number } | null };
  ratios: { bOverA: number | null; bOverC: number | null; bOverCAfterB: number | null };
}): void {
  const rows: Array<[string, string]> = [
    ['(a) naive loop', r.naive ? `${fmt(r.naive.rate, 1)} resources/s (${r.naive.resources} resources)` : 'skipped'],
    [
      '(b) connector full sync',
      `${fmt(r.connector.rate)} resources/s (${fmt(r.resources)} resources in ${fmt(r.connector.seconds, 1)} s, limiter peak ${r.connector.limiterPeak})`,
    ],
    ...Object.entries(r.connector.byType).map(([type, t]): [string, string] => [
      `  (b) ${type}`,
      `${fmt(t.perSecond)} resources/s (${fmt(t.written)} written${t.failed ? `, ${fmt(t.failed)} failed` : ''})`,
    ]),
    ['(c) raw AHDS stand-in limit', r.raw ? `${fmt(r.raw.rate)} resources/s (concurrency ${r.raw.concurrency})` : 'skipped'],
    ['b / a', r.ratios.bOverA === null ? '-' : `${fmt(r.ratios.bOverA, 1)}x (target >= 30x)`],
    ['(c) again after (b)', r.raw?.afterB ? `${fmt(r.raw.afterB.rate)} resources/s (into the stand-in (b) filled)` : '-'],
    ['b / c', r.ratios.bOverC === null ? '-' : `${fmt(r.ratios.bOverC, 2)} (target >= 0.8)`],
    ['b / c after (b)', r.ratios.bOverCAfterB === null ? '-' : fmt(r.ratios.bOverCAfterB, 2)],
    [
      'bytes (b), both ways',
      `to AHDS ${fmt(r.connector.mbPerSecond.toAhds, 1)} MB/s, from AHDS ${fmt(r.connector.mbPerSecond.fromAhds, 1)} MB/s`,
    ],
    [
      '(d) over-driven',
      r.overDriven
        ? `connector ${fmt(r.overDriven.connector.rate)} resources/s vs best fixed ${fmt(r.overDriven.best.rate)} (concurrency ${r.overDriven.best.concurrency}, capacity ${r.overDriven.capacity}): ${fmt(r.overDriven.ratio, 2)} (target >= 0.9), ${fmt(r.overDriven.connector.throttledPct, 2)}% bundles throttled (target < 2%)`
        : 'skipped',
    ],
    ['connector peak RSS', `${fmt(r.connector.peakRssMb)} MB`],
    ['connector CPU per resource', `${fmt(r.connector.cpuMsPerResource, 3)} ms`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  log('');
  for (const [k, v] of rows) log(`${k.padEnd(w)}  ${v}`);
  log('');
}

main().catch((error: unknown) => {
  // One line: the figures printed so far stay readable above it.
  log(`bench failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
