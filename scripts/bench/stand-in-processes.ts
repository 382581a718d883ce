/**
 * Starts the benchmark's stand-ins as child processes (stand-in-process.ts) and talks to them over
 * IPC; places processes on CPUs with taskset.
 */
import { execFileSync, spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import type { StandInMessage, StandInSpec } from './stand-in-process';

export interface StandInProcess<Ready> {
  ready: Ready;
  call<T>(op: string, arg?: unknown): Promise<T>;
  /** CPU time (user + system) this process has used so far, ms. */
  cpuMs(): Promise<number>;
  close(): Promise<void>;
}

/**
 * Starts one stand-in and waits until it serves. If the process dies, whatever is waiting on it
 * fails with its exit code (never hangs).
 */
export function startStandInProcess<Ready>(spec: StandInSpec, options: { heapMb: number; cpus?: string }): Promise<StandInProcess<Ready>> {
  const node = [process.execPath, `--max-old-space-size=${Math.ceil(options.heapMb)}`, path.join(__dirname, 'stand-in-process.js')];
  const [command, ...args] = options.cpus ? ['taskset', '-c', options.cpus, ...node] : node;
  const child = spawn(command!, args, {
    env: { ...process.env, BENCH_STAND_IN: JSON.stringify(spec) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let nextId = 0;
  let exited: Error | undefined;
  return new Promise((resolveStart, rejectStart) => {
    child.on('error', rejectStart);
    child.on('exit', (code, signal) => {
      exited = new Error(`${spec.role} stand-in process exited (${signal ?? `code ${code}`})`);
      rejectStart(exited);
      for (const p of pending.values()) p.reject(exited);
      pending.clear();
    });
    child.on('message', (m: StandInMessage) => {
      if ('fatal' in m) rejectStart(new Error(`${spec.role} stand-in failed to start: ${m.fatal}`));
      else if ('ready' in m) {
        const call = <T>(op: string, arg?: unknown): Promise<T> =>
          new Promise<T>((resolve, reject) => {
            if (exited) return reject(exited);
            const id = nextId++;
            pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
            child.send({ id, op, arg });
          });
        resolveStart({
          ready: m.ready as Ready,
          call,
          cpuMs: async () => {
            const u = await call<NodeJS.CpuUsage>('cpu');
            return (u.user + u.system) / 1000;
          },
          async close() {
            if (exited) return;
            const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
            await call('close').catch(() => undefined);
            await Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
            if (!exited) child.kill();
          },
        });
      } else {
        const p = pending.get(m.id);
        pending.delete(m.id);
        if (m.error !== undefined) p?.reject(new Error(m.error));
        else p?.resolve(m.value);
      }
    });
  });
}

export interface CpuPlacement {
  /** 'split': the AHDS stand-in on CPUs of its own, everything else on the others; 'shared': no pinning. */
  mode: 'split' | 'shared';
  /** taskset CPU list for the AHDS stand-in (split only). */
  ahds?: string;
  /** taskset CPU list for everything else: this process, the OpenEMR stand-in, the connector. */
  rest?: string;
  note: string;
}

/**
 * In split mode the AHDS stand-in gets the upper half of the CPUs and the rest the lower half, so
 * the target's capacity (c) is the same whether or not the connector is busy beside it, as it is in
 * Azure. Pins this process (all its threads) to the lower half; children inherit that unless
 * started with their own list.
 */
export function placeOnCpus(requested: 'split' | 'shared'): CpuPlacement {
  const cpus = os.availableParallelism();
  if (requested === 'shared') return { mode: 'shared', note: `shared: every process on all ${cpus} CPUs` };
  if (cpus < 2) return { mode: 'shared', note: `shared: only ${cpus} CPU, nothing to split` };
  const half = Math.floor(cpus / 2);
  const list = (from: number, to: number): string => (from === to ? `${from}` : `${from}-${to}`);
  const rest = list(0, half - 1);
  const ahds = list(half, cpus - 1);
  try {
    execFileSync('taskset', ['-a', '-p', '-c', rest, String(process.pid)], { stdio: 'ignore' });
  } catch {
    return { mode: 'shared', note: 'shared: taskset is not available here' };
  }
  return { mode: 'split', ahds, rest, note: `split: AHDS stand-in on CPU ${ahds}; connector, OpenEMR stand-in and bench on CPU ${rest}` };
}
