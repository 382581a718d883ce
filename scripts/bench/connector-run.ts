/**
 * The connector under benchmark, in a process of its own so its memory and CPU are its own:
 * builds the connector from process.env as the Functions app does (without Storage: the bench runs
 * no Azurite, so dead letters are kept in memory), runs one full sync
 * (or, with BENCH_SINCE set, a windowed run from that instant) and prints one JSON line on stdout.
 *
 *   node dist/scripts/bench/connector-run.js        # env: the stack's settings plus AHDS_* tuning
 */
import { createConnector } from '../../src/connector';
import { loadConfig } from '../../src/config/load';
import type { RunCounts } from '../../src/telemetry/telemetry';

export interface ConnectorRunReport extends RunCounts {
  status: string;
  wallMs: number;
  /** process.resourceUsage().maxRSS, KB: the peak resident set of this process. */
  maxRssKb: number;
  /** RSS sampled every `sampleMs` (MB), for the memory profile over the run. */
  rssSamplesMb: number[];
  sampleMs: number;
  heapUsedPeakMb: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  limiterPeak: number;
  limiterFinal: number;
  /** Up to 5 failures (identifiers and reasons only), to explain a non-ok status. */
  failures: unknown[];
  /** The adaptive limit sampled with the RSS. */
  limitSamples: number[];
  /** Per carried type: created, updated, unchanged and failed writes. */
  byType: Record<string, { created: number; updated: number; unchanged: number; failed: number }>;
}

async function main(): Promise<void> {
  const sampleMs = Number(process.env.BENCH_SAMPLE_MS ?? 1000);
  const samples: number[] = [];
  let heapPeak = 0;
  const sample = (): void => {
    const m = process.memoryUsage();
    heapPeak = Math.max(heapPeak, m.heapUsed);
    // Keep the profile short whatever the run length: drop every other sample when it grows long.
    samples.push(Math.round(m.rss / 1048576));
    if (samples.length >= 600) for (let i = samples.length - 1; i > 0; i -= 2) samples.splice(i, 1);
  };
  const connector = await createConnector(loadConfig(process.env), { state: null });
  const limits: number[] = [];
  const timer = setInterval(() => {
    sample();
    limits.push(connector.writer.limiter.limit);
    if (process.env.BENCH_TRACE)
      process.stderr.write(
        `limit ${connector.writer.limiter.limit} inFlight ${connector.writer.limiter.inFlight} rss ${Math.round(process.memoryUsage().rss / 1048576)}\n`,
      );
    if (limits.length >= 600) for (let i = limits.length - 1; i > 0; i -= 2) limits.splice(i, 1);
  }, sampleMs);
  timer.unref();

  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const since = process.env.BENCH_SINCE;
  const options = { trigger: 'cli' as const, ...(since ? { window: { since } } : {}) };
  const summary = await connector.sync.fullSync(options);
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  sample();
  clearInterval(timer);
  const { status, read, created, updated, unchanged, failed, deadLettered, durationMs } = summary;
  const report: ConnectorRunReport = {
    status,
    read,
    created,
    updated,
    unchanged,
    failed,
    deadLettered,
    durationMs,
    wallMs: Math.round(wallMs),
    maxRssKb: process.resourceUsage().maxRSS,
    rssSamplesMb: samples,
    sampleMs,
    heapUsedPeakMb: Math.round(heapPeak / 1048576),
    cpuUserMs: Math.round(cpu.user / 1000),
    cpuSystemMs: Math.round(cpu.system / 1000),
    limiterPeak: connector.writer.limiter.peak,
    limiterFinal: connector.writer.limiter.limit,
    failures: summary.failures.slice(0, 5),
    limitSamples: limits,
    byType: summary.byType,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`connector run failed: ${(error as Error)?.stack ?? String(error)}\n`);
    process.exit(1);
  },
);
