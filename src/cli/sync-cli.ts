import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { commandLine } from './args';
import { INSTANT_EXAMPLE, parseInstant } from '../config/instant';
import { ConfigError, loadConfig } from '../config/load';
import { checkAhds } from '../config/preflight';
import { createConnector, type Connector } from '../connector';
import { UpstreamError } from '../http/errors';
import { incrementalSync, runLine, type RunProgress } from '../sync/incremental';
import { classifyRunError, runFailureMessage } from '../state/errors';
import { reconcileLine, runReconcile } from '../sync/reconcile';
import { replayDeadLetters, replayLine } from '../sync/replay';
import { workDepsOf } from '../sync/work-queue';
import type { Tally } from '../sync/tally';
import { freshnessSourceOf, reportUnfinishedRun } from '../sync/run-report';
import { createTelemetry } from '../telemetry';
import { OperationScopedTelemetry, runInOperation } from '../telemetry/operation-scope';

export const USAGE = `Usage: npm run sync -- [--full | --since <ISO date-time> | --reconcile | --replay] [--json] [--settings <file>]

  (no option)    incremental run from the watermarks (the timer's run)
  --full         everything in OpenEMR, whatever the watermarks (bulk $export where offered)
  --since <t>    every change since <t> (watermarks still advance to the new upper bound)
  --reconcile    compare OpenEMR and AHDS (ids and content hashes) and repair the difference
  --replay       replay every dead letter; successes are removed
  --json         print the summary as JSON
  --settings <f> read settings from the Values of a local.settings.json (default: ./local.settings.json
                 if present); the environment wins over the file

Exit codes: 0 done, 1 failed (nothing advanced), 2 done with dead letters, 3 skipped (lease held), 64 usage.`;

export interface CliIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** Settings: Values of local.settings.json (if any) overlaid by the environment. */
export function readSettings(io: Pick<CliIo, 'env' | 'cwd'>, file?: string): { env: NodeJS.ProcessEnv; from?: string } {
  const candidate = file ? path.resolve(io.cwd, file) : path.join(io.cwd, 'local.settings.json');
  if (!existsSync(candidate)) {
    if (file) throw new ConfigError('--settings', `Settings file ${candidate} does not exist.`);
    return { env: io.env };
  }
  let values: Record<string, unknown> = {};
  try {
    values = (JSON.parse(readFileSync(candidate, 'utf8')) as { Values?: Record<string, unknown> }).Values ?? {};
  } catch {
    throw new ConfigError('--settings', `Settings file ${candidate} is not JSON with a "Values" object.`);
  }
  const fromFile = Object.fromEntries(Object.entries(values).filter(([, v]) => typeof v === 'string')) as Record<string, string>;
  return { env: { ...fromFile, ...io.env }, from: candidate };
}

/** Progress on a terminal: one line redrawn (counts, rate, ETA); elsewhere a plain line every few seconds. */
export class ProgressReporter {
  private lastDraw = 0;
  private drawn = false;
  private lastPhase = '';
  readonly startedAt = Date.now();

  /** Resources the run is expected to read, when known (see expectedTotal): gives the bar and ETA a fraction. */
  total?: number;

  constructor(
    private readonly out: CliIo['stdout'],
    private readonly tty: boolean,
    private readonly intervalMs = tty ? 200 : 5000,
  ) {}

  update(tally: Tally, phase: string, fraction?: number): void {
    const now = Date.now();
    const phaseChanged = phase !== this.lastPhase;
    if (!phaseChanged && now - this.lastDraw < this.intervalMs) return;
    this.lastDraw = now;
    this.lastPhase = phase;
    const line = this.line(tally, phase, fraction ?? this.fractionOfTotal(tally), now);
    if (this.tty) {
      // A pseudo-terminal may report 0 columns: then the line is not cut.
      const columns = this.out.columns && this.out.columns > 20 ? this.out.columns : 200;
      this.out.write(`\r\x1b[K${line.slice(0, columns - 1)}`);
      this.drawn = true;
    } else this.out.write(`${line}\n`);
  }

  /** read / total, held below 1 until the run says it is done (the total is what AHDS held before). */
  private fractionOfTotal(tally: Tally): number | undefined {
    if (!this.total || this.total <= 0) return undefined;
    return Math.min(0.99, tally.read / this.total);
  }

  line(tally: Tally, phase: string, fraction: number | undefined, now = Date.now()): string {
    const written = tally.total('created') + tally.total('updated') + tally.total('unchanged');
    const failed = tally.total('failed');
    const seconds = Math.max(0.001, (now - this.startedAt) / 1000);
    const rate = (written + failed) / seconds;
    const eta =
      fraction && fraction > 0 && fraction < 1 ? formatSeconds((seconds * (1 - fraction)) / fraction) : fraction === 1 ? '0s' : undefined;
    const bar = fraction === undefined ? '' : `[${'#'.repeat(Math.floor(fraction * 20)).padEnd(20, '-')}] ${Math.floor(fraction * 100)}% `;
    const of = this.total ? ` of ~${this.total}` : '';
    return `${bar}${phase}: read ${tally.read}${of}, written ${written} (created ${tally.total('created')}, updated ${tally.total('updated')}, unchanged ${tally.total('unchanged')}), failed ${failed}, ${rate.toFixed(0)}/s${eta ? `, ETA ${eta}` : ''}`;
  }

  done(): void {
    if (this.tty && this.drawn) this.out.write('\n');
    this.drawn = false;
  }
}

/**
 * What a --full run or a reconciliation will read, as far as can be told before it starts: OpenEMR
 * reports no totals (its searches count only the page), so this is what AHDS holds now
 * (`_summary=count` per configured type, one cheap request each), which is the source's size once it has been
 * synced. Undefined when AHDS is empty or does not answer (the line then shows no bar).
 */
export async function expectedTotal(connector: Pick<Connector, 'writer' | 'config'>): Promise<number | undefined> {
  try {
    let total = 0;
    for (const type of connector.config.sync.resourceTypes) {
      const answer = await connector.writer.http.get(`/${type}`, { params: { _summary: 'count' } });
      const count = (answer.data as { total?: unknown } | undefined)?.total;
      if (typeof count === 'number' && count >= 0) total += count;
    }
    return total > 0 ? total : undefined;
  } catch {
    return undefined;
  }
}

function formatSeconds(s: number): string {
  const whole = Math.round(s);
  const m = Math.floor(whole / 60);
  return m > 0 ? `${m}m${String(whole % 60).padStart(2, '0')}s` : `${whole}s`;
}

const OPTIONS = {
  full: { type: 'boolean', default: false },
  since: { type: 'string' },
  reconcile: { type: 'boolean', default: false },
  replay: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  settings: { type: 'string' },
} as const;

/** The CLI; answers the exit code. */
export async function main(
  argv: string[],
  io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() },
): Promise<number> {
  const parsed = commandLine(argv, OPTIONS, USAGE, io);
  if (typeof parsed === 'number') return parsed;
  const args = parsed;
  const modes = [args.full, args.since !== undefined, args.reconcile, args.replay].filter(Boolean).length;
  if (modes > 1) {
    io.stderr.write(`Give at most one of --full, --since, --reconcile, --replay. Run with --help for the options.\n`);
    return 64;
  }
  if (args.since !== undefined && parseInstant(args.since) === undefined) {
    io.stderr.write(`--since must be an ISO 8601 date (2025-01-01) or date-time with a zone such as ${INSTANT_EXAMPLE}.\n`);
    return 64;
  }

  const print = (line: string) => io.stdout.write(`${line}\n`);
  const runId = randomUUID();
  let connector: Connector | undefined;
  try {
    const { env, from } = readSettings(io, args.settings);
    if (from) print(`Settings from ${from} (environment wins).`);
    const config = loadConfig(env);
    // One operation for the whole CLI run: its run id, so every call it makes is found under it.
    const base = createTelemetry({
      connectionString: config.telemetry.connectionString,
      cloudRole: config.telemetry.cloudRole ?? 'openemr-ahds-sync-cli',
    });
    connector = await createConnector(config, { telemetry: new OperationScopedTelemetry(base) });
    const built = connector;
    return await runInOperation(runId, async () => {
      // The AHDS side first (one token, one count): a wrong URL, secret or role is said as such
      // before anything runs, even when a run would find nothing new and never call AHDS.
      const check = await checkAhds(config, {
        credential: built.getCredential(),
        get: (p, params) => built.writer.http.get(p, { params }),
      });
      if (!check.ok) {
        const failed = check.steps.find((s) => !s.ok)!;
        io.stderr.write(`AHDS check failed (${failed.setting}): ${failed.message}\n`);
        return 1;
      }
      return run(built);
    });
  } catch (error) {
    const message = runFailureMessage(error);
    // Only an outage passes by itself; a refusal (credentials, a wrong URL, a role) needs a fix first.
    const hint =
      error instanceof UpstreamError && error.isOutage && !classifyRunError(error)
        ? ' Nothing was advanced; run again when it is back.'
        : '';
    io.stderr.write(`\n${message}${hint}\n`);
    return 1;
  } finally {
    // Every way out, failures and skipped runs included: those are what operators need to see.
    await connector?.telemetry.flush().catch(() => undefined);
  }

  async function run(connector: Connector): Promise<number> {
    const operation = args.replay ? 'replay' : args.reconcile ? 'reconcile' : 'incrementalSync';
    const startedAt = Date.now();
    const unfinished = (status: 'failed' | 'skipped', error?: unknown) =>
      reportUnfinishedRun(freshnessSourceOf(connector), { runId, trigger: 'cli', operation, status, error, startedAt }).catch(
        () => undefined,
      );
    try {
      const code = await runMode(connector);
      if (code === 3) await unfinished('skipped');
      return code;
    } catch (error) {
      await unfinished('failed', error);
      throw error;
    }
  }

  async function runMode(connector: Connector): Promise<number> {
    const tty = Boolean(io.stdout.isTTY);
    const progress = new ProgressReporter(io.stdout, tty);
    const onRunProgress = (p: RunProgress) => progress.update(p.tally, p.phase, p.fraction);
    const log = (m: string) => {
      progress.done();
      print(m);
    };

    if (args.full || args.reconcile) progress.total = await expectedTotal(connector);

    if (args.replay) {
      const summary = await replayDeadLetters(workDepsOf(connector), { runId });
      progress.done();
      print(args.json ? JSON.stringify(summary, null, 2) : replayLine(summary));
      return summary.stillFailing > 0 ? 2 : 0;
    }
    if (args.reconcile) {
      const outcome = await runReconcile(connector, {
        trigger: 'cli',
        runId,
        onProgress: (t) => progress.update(t, 'reconcile'),
        log: () => undefined,
      });
      progress.done();
      if (outcome.skipped) {
        print(outcome.skip.message);
        return 3;
      }
      print(args.json ? JSON.stringify(outcome.value, null, 2) : reconcileLine(outcome.value));
      return outcome.value.status === 'ok' ? 0 : outcome.value.status === 'partial' ? 2 : 1;
    }
    const outcome = await incrementalSync(connector, {}, log).run({
      trigger: 'cli',
      full: args.full,
      since: args.since,
      runId,
      onProgress: onRunProgress,
    });
    progress.done();
    if (outcome.skipped) {
      print(outcome.skip.message);
      return 3;
    }
    const s = outcome.value;
    print(args.json ? JSON.stringify(s, null, 2) : runLine(s));
    if (!args.json && s.failures.length > 0) {
      print(
        `Dead-lettered (first ${Math.min(10, s.failures.length)}): ${s.failures
          .slice(0, 10)
          .map((f) => `${f.resourceType}/${f.id} [${f.stage}${f.status ? ` ${f.status}` : ''}]`)
          .join(', ')}; list them with GET /api/deadletters, replay with --replay.`,
      );
    }
    return s.status === 'ok' ? 0 : s.status === 'partial' ? 2 : 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`${String((error as Error)?.message ?? error)}\n`);
      process.exit(1);
    },
  );
}
