import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { findRepoRoot } from '../openemr/repo-paths';

/**
 * A real HAPI FHIR JPA server (R4, in-memory H2, HL7's validator on every request) for the local
 * stack and the test:hapi tier. The server is our own small Java project in this folder, built from
 * HAPI's artifacts on Maven Central; this module builds it once (cached in stack/hapi/target), starts
 * it on a free loopback port, waits for /metadata, and stops it.
 */

const PROJECT_DIR = path.join(findRepoRoot(), 'stack', 'hapi');
const TARGET_DIR = path.join(PROJECT_DIR, 'target');
const JAR = path.join(TARGET_DIR, 'fhirsync-hapi.jar');
const CLASSPATH_FILE = path.join(TARGET_DIR, 'classpath.txt');

export interface JavaToolchain {
  ok: boolean;
  /** e.g. "java 17.0.15, Maven 3.8.7", or what is missing. */
  summary: string;
}

/** Whether Java 17+ and Maven are on PATH (the HAPI tier needs both; nothing else does). */
export function javaToolchain(): JavaToolchain {
  const java = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (java.error || java.status !== 0) return { ok: false, summary: 'no java on PATH' };
  const javaVersion = /version "([^"]+)"/.exec(`${java.stderr}${java.stdout}`)?.[1] ?? 'unknown';
  const major = Number(javaVersion.split('.')[0]);
  if (!(major >= 17)) return { ok: false, summary: `java ${javaVersion} (17 or later needed)` };
  const mvn = spawnSync('mvn', ['-v'], { encoding: 'utf8' });
  if (mvn.error || mvn.status !== 0) return { ok: false, summary: `java ${javaVersion}, no mvn on PATH` };
  const mvnVersion = /Apache Maven ([0-9][0-9.]*)/.exec(mvn.stdout)?.[1] ?? 'unknown';
  return { ok: true, summary: `java ${javaVersion}, Maven ${mvnVersion}` };
}

export interface HapiBuild {
  /** The java -cp argument. */
  classpath: string;
  /** 'cached' when the jar was current and nothing ran; else how Maven ran. */
  how: 'cached' | 'offline' | 'online';
  durationMs: number;
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'target' || entry.name === 'node_modules') continue;
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(full) : fs.statSync(full).mtimeMs);
  }
  return newest;
}

function cachedClasspath(): string | undefined {
  if (!fs.existsSync(JAR) || !fs.existsSync(CLASSPATH_FILE)) return undefined;
  if (fs.statSync(JAR).mtimeMs < newestSource(PROJECT_DIR)) return undefined;
  const deps = fs.readFileSync(CLASSPATH_FILE, 'utf8').trim().split(path.delimiter);
  // A cleared Maven repository leaves a classpath naming jars that are gone.
  if (!deps.every((jar) => fs.existsSync(jar))) return undefined;
  return [JAR, ...deps].join(path.delimiter);
}

function runMaven(args: string[], log: (line: string) => void): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('mvn', ['-B', '-q', ...args, 'package'], { cwd: PROJECT_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.length > 200_000) output = output.slice(-100_000);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) log(`mvn ${args.join(' ')} package exited ${code}`);
      resolve({ code: code ?? 1, output });
    });
  });
}

/**
 * Builds the server unless the cached jar is current. With the jar built once, Maven runs offline
 * (-o): everything it needs is in the local repository. The first build downloads HAPI and its
 * dependencies from Maven Central (about 360 MB into ~/.m2).
 */
export async function buildHapiServer(options: { log?: (line: string) => void } = {}): Promise<HapiBuild> {
  const log = options.log ?? (() => undefined);
  const started = Date.now();
  const cached = cachedClasspath();
  if (cached) return { classpath: cached, how: 'cached', durationMs: 0 };
  const lock = path.join(PROJECT_DIR, '.build-lock');
  await acquireLock(lock);
  try {
    const again = cachedClasspath(); // another process may have built it while we waited
    if (again) return { classpath: again, how: 'cached', durationMs: Date.now() - started };
    let how: HapiBuild['how'] = 'offline';
    let result = fs.existsSync(CLASSPATH_FILE) ? await runMaven(['-o'], log) : { code: 1, output: '' };
    if (result.code !== 0) {
      how = 'online';
      log('Building the HAPI FHIR server (stack/hapi) with Maven; the first build downloads its dependencies...');
      result = await runMaven([], log);
    }
    if (result.code !== 0) {
      const errors = result.output
        .split('\n')
        .filter((l) => l.includes('ERROR'))
        .slice(0, 5)
        .join('\n');
      throw new Error(`Maven could not build stack/hapi (exit ${result.code}):\n${errors || result.output.slice(-2000)}`);
    }
    const classpath = cachedClasspath();
    if (!classpath) throw new Error('Maven finished but stack/hapi/target has no jar or classpath');
    return { classpath, how, durationMs: Date.now() - started };
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** A directory as a lock across processes (jest workers, two terminals); a stale one expires. */
async function acquireLock(lock: string): Promise<void> {
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      return;
    } catch {
      const age = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 15 * 60_000) fs.rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`stack/hapi build lock ${lock} held for 15 minutes`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

export interface HapiServerOptions {
  /** HAPI's default: a reference must resolve when written (default true). */
  referentialIntegrity?: boolean;
  /** HAPI's default: a resource another one references cannot be deleted (default: referentialIntegrity). */
  referentialIntegrityOnDelete?: boolean;
  /** Request validation with HL7's validator (default true). */
  validateRequests?: boolean;
  /** JVM heap ceiling in MB (default 640). */
  maxHeapMb?: number;
  /** Default and maximum search page sizes (HAPI: 20 and 200 here). */
  defaultPageSize?: number;
  maxPageSize?: number;
  /** How long start-up may take, build excluded (default 300 s: a loaded 2-core machine). */
  startTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface ValidationIssue {
  severity: 'fatal' | 'error' | 'warning' | 'information';
  messageId: string;
  path: string;
  count: number;
  example: string;
}

export interface ValidationReport {
  /** Requests the validator judged (creates, updates, bundles). */
  requests: number;
  issues: ValidationIssue[];
}

export interface HapiServer {
  /** FHIR base URL, e.g. http://127.0.0.1:41234/fhir */
  fhirUrl: string;
  port: number;
  build: HapiBuild;
  /** Milliseconds from JVM start to the first /metadata answer. */
  startMs: number;
  /** What HAPI's validator said about every request since start (or the last reset). */
  validationReport(): Promise<ValidationReport>;
  resetValidationReport(): Promise<void>;
  close(): Promise<void>;
}

/** Builds (if needed) and starts the server on a free loopback port; resolves once /metadata answers. */
export async function startHapiServer(options: HapiServerOptions = {}): Promise<HapiServer> {
  const log = options.log ?? (() => undefined);
  const build = await buildHapiServer({ log });
  const props: Record<string, string> = {
    'fhirsync.referentialIntegrity': String(options.referentialIntegrity ?? true),
    'fhirsync.referentialIntegrityOnDelete': String(options.referentialIntegrityOnDelete ?? options.referentialIntegrity ?? true),
    'fhirsync.validateRequests': String(options.validateRequests ?? true),
    'fhirsync.defaultPageSize': String(options.defaultPageSize ?? 20),
    'fhirsync.maxPageSize': String(options.maxPageSize ?? 200),
  };
  const args = [
    `-Xmx${options.maxHeapMb ?? 640}m`,
    '-XX:+UseSerialGC', // one GC thread: the machine is shared and small
    '-XX:TieredStopAtLevel=1', // C1 only: faster start-up and less CPU; plenty for a test server
    '-Djava.awt.headless=true',
    ...Object.entries(props).map(([k, v]) => `-D${k}=${v}`),
    '-cp',
    build.classpath,
    'fhirsync.hapi.HapiServer',
    '--port',
    '0',
  ];
  const started = Date.now();
  // stdin stays a pipe we hold: the server exits when it closes, so a launcher that dies takes it along.
  const child: ChildProcess = spawn('java', args, { cwd: PROJECT_DIR, stdio: ['pipe', 'pipe', 'pipe'] });
  const fhirUrl = await new Promise<string>((resolve, reject) => {
    let output = '';
    const timeoutMs = options.startTimeoutMs ?? 300_000;
    const fail = (error: Error): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new Error(`HAPI FHIR did not start within ${timeoutMs / 1000} s: ${output.slice(-1500)}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.length > 100_000) output = output.slice(-50_000);
      const m = /FHIRSYNC-HAPI READY (http:\/\/127\.0\.0\.1:\d+\/fhir)/.exec(output);
      if (m) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => {
      onData(chunk);
      for (const line of chunk.toString().split('\n')) if (/\b(ERROR|Exception)\b/.test(line)) log(`hapi: ${line.slice(0, 300)}`);
    });
    child.once('exit', (code) => fail(new Error(`HAPI FHIR exited with code ${code} while starting: ${output.slice(-1500)}`)));
  });
  // Keep draining its output so the JVM never blocks on a full pipe.
  child.stdout!.removeAllListeners('data');
  child.stdout!.on('data', () => undefined);
  const port = Number(new URL(fhirUrl).port);
  await waitForMetadata(fhirUrl, options.startTimeoutMs ?? 300_000);
  const startMs = Date.now() - started;
  const base = `http://127.0.0.1:${port}`;
  return {
    fhirUrl,
    port,
    build,
    startMs,
    validationReport: async () => {
      const res = await fetch(`${base}/validation-report`);
      if (!res.ok) throw new Error(`validation-report answered ${res.status}`);
      return (await res.json()) as ValidationReport;
    },
    resetValidationReport: async () => {
      await fetch(`${base}/validation-report`, { method: 'DELETE' });
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const force = setTimeout(() => child.kill('SIGKILL'), 15_000);
        child.once('exit', () => {
          clearTimeout(force);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

async function waitForMetadata(fhirUrl: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${fhirUrl}/metadata`, { headers: { accept: 'application/fhir+json' } });
      if (res.ok) {
        const body = (await res.json()) as { resourceType?: string };
        if (body.resourceType === 'CapabilityStatement') return;
      }
      last = `status ${res.status}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`HAPI FHIR /metadata did not answer within ${timeoutMs / 1000} s (${last})`);
}
