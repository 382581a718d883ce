import fs from 'node:fs';
import path from 'node:path';
import { commandLine } from '../src/cli/args';
import { loadConfig } from '../src/config/load';
import { canonicalJson, withoutServerMeta } from '../src/fhir/canonical';
import { createResourceMapper } from '../src/mapping';
import { mappingOptions } from '../src/connector';
import type { SyncedResource } from '../src/fhir/types';
import { startStack, type Stack } from '../stack';
import type { SupportedType } from '../stack/openemr';
import { QueueClient } from '@azure/storage-queue';
import { invokeHttpHandler, loadFunctionRegistrations, startFunctionsHost } from '../stack/functions-host';
import { drainQueue, resolveQueueName, type QueueHandler } from '../stack/queue-worker';

/**
 * `npm run demo`: the connector's main job on the local stack, through the real function
 * handlers. A full sync of the data, then (default data) a few source changes and an incremental
 * pass; a short summary and one final JSON line. Exits non-zero if the target differs from the
 * source.
 */
interface PassFigures {
  pass: string;
  read: number;
  created: number;
  updated: number;
  unchanged: number;
  failed: number;
  seconds: number;
  resourcesPerSecond: number;
  /** Per carried type: created, updated, unchanged and failed writes. */
  byType: Record<string, TypeFigures>;
}

interface TypeFigures {
  created: number;
  updated: number;
  unchanged: number;
  failed: number;
}

export const USAGE = `Usage: npm run demo -- [--data DIR] [--out DIR] [--keep-running]

A full sync of the sample data through the real function handlers on the local stack, a few source
changes and an incremental run, then a byte-for-byte check of AHDS against the mapped source.

  --data DIR       Bulk FHIR NDJSON directory instead of data/synthea-dev (and data/openemr-directory,
                   the sample's Practitioners, Organizations and Locations: DIR brings its own, if any)
  --out DIR        write the figures and the target's resources there
  --keep-running   leave the stack and the connector's endpoints up afterwards (Ctrl-C stops them)
  --help           this text`;

const parsed = commandLine(
  process.argv.slice(2),
  { data: { type: 'string' }, out: { type: 'string' }, 'keep-running': { type: 'boolean', default: false } },
  USAGE,
);
if (typeof parsed === 'number') process.exit(parsed);
const args = parsed;

async function main(): Promise<number> {
  const dataDir = args.data ? path.resolve(args.data) : undefined;
  if (dataDir && !fs.existsSync(path.join(dataDir, 'Patient.ndjson'))) {
    console.error(`--data ${dataDir}: no Patient.ndjson there (a Bulk FHIR NDJSON directory is expected).`);
    return 2;
  }
  console.log('Starting the local stack (OpenEMR and AHDS stand-ins, Entra token endpoint, Azurite)...');
  // A one-second lag instead of the default minute, so the demo's edits are due a few seconds later.
  const stack = await startStack({ dataDir, settings: { SYNC_LAG_SECONDS: '1' } });
  let keepOpen = false;
  try {
    Object.assign(process.env, stack.env);
    // Per carried type (SYNC_RESOURCE_TYPES): a type added to the table shows up here when carried.
    const counts = loadConfig(stack.env).sync.resourceTypes.map((type) => `${stack.openemr.store.count(type as SupportedType)} ${type}`);
    console.log(`Source: ${counts.join(', ')}${dataDir ? ` from ${dataDir}` : ' (synthetic sample data)'}.`);

    const passes: PassFigures[] = [];
    passes.push(await runPass('full sync', () => invokeFunction('syncRun', { query: { full: 'true' } })));

    if (!dataDir) {
      const changes = simulateChanges(stack);
      console.log(`Changed in OpenEMR: ${changes.join(', ')}.`);
      // OpenEMR stamps lastUpdated with one-second precision; the window closes one second behind now.
      await new Promise((resolve) => setTimeout(resolve, 2500));
    }
    passes.push(await runPass(dataDir ? 'second pass (nothing changed)' : 'incremental sync', () => invokeFunction('syncRun', {})));

    const differences = await verify(stack);
    if (args.out) await writeOut(stack, path.resolve(args.out), passes, differences);

    printSummary(passes, differences);
    const second = passes[1]!;
    const failedSecondPass = dataDir && second.created + second.updated > 0;
    if (failedSecondPass) console.error('The second pass wrote resources although nothing changed: output is not deterministic.');

    if (args['keep-running']) {
      keepOpen = true;
      const host = await startFunctionsHost({ log: (line) => console.log(line) });
      const id = stack.openemr.store.ids('Patient')[0];
      console.log(`\nThe stack stays up (Ctrl-C stops it). Connector endpoints at ${host.url}:`);
      console.log(`  curl -s -X POST ${host.url}/sync/patients/${id}`);
      console.log(`  curl -s -X POST ${host.url}/sync/patients/${id}/everything`);
      console.log(`  curl -s -X POST "${host.url}/sync/run"`);
      console.log(`  curl -s ${host.url}/deadletters`);
      process.on(
        'SIGINT',
        () =>
          void host
            .close()
            .then(() => stack.close())
            .then(() => process.exit(0)),
      );
    }
    return differences.length > 0 || failedSecondPass ? 1 : 0;
  } finally {
    if (!keepOpen) await stack.close();
  }
}

async function invokeFunction(
  name: string,
  options: { query?: Record<string, string>; params?: Record<string, string> },
): Promise<Record<string, unknown>> {
  const fn = loadFunctionRegistrations().http.find((f) => f.name === name);
  if (!fn) throw new Error(`No HTTP function named ${name} is registered.`);
  const url = new URL(`http://127.0.0.1/api/${fn.route}`);
  for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, v);
  const answer = await invokeHttpHandler(fn.handler, { functionName: name, method: 'POST', url: url.toString(), params: options.params });
  const body = JSON.parse(answer.body || '{}') as Record<string, unknown>;
  if (answer.status === 202) return followRun(String(body.runId));
  if (answer.status >= 400 && body.resourceType === 'OperationOutcome') {
    const issue = (body.issue as Array<{ diagnostics?: string }> | undefined)?.[0];
    throw new Error(`${name} answered ${answer.status}: ${issue?.diagnostics ?? 'error'}`);
  }
  return body;
}

/** A long run (202): the queue worker runs it, as in Azure; answers its result once it is done. */
async function followRun(runId: string): Promise<Record<string, unknown>> {
  const { other, http } = loadFunctionRegistrations();
  const worker = other.find((o) => o.kind === 'storageQueue')!;
  const queue = new QueueClient(process.env.AzureWebJobsStorage!, resolveQueueName(String(worker.options.queueName)));
  await drainQueue(queue, worker.options.handler as QueueHandler, { functionName: worker.name });
  const status = http.find((f) => f.name === 'runStatus')!;
  const answer = await invokeHttpHandler(status.handler, {
    functionName: 'runStatus',
    method: 'GET',
    url: `http://127.0.0.1/api/runs/${runId}`,
    params: { runId },
  });
  const run = JSON.parse(answer.body) as { state?: string; result?: Record<string, unknown>; error?: { message?: string } };
  if (!run.result) throw new Error(`run ${runId} ended ${run.state ?? 'unknown'}: ${run.error?.message ?? 'no result'}`);
  return run.result;
}

async function runPass(name: string, run: () => Promise<Record<string, unknown>>): Promise<PassFigures> {
  const started = process.hrtime.bigint();
  const summary = await run();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const n = (key: string): number => Number(summary[key] ?? 0);
  const written = n('created') + n('updated') + n('unchanged');
  const figures: PassFigures = {
    pass: name,
    read: n('read'),
    created: n('created'),
    updated: n('updated'),
    unchanged: n('unchanged'),
    failed: n('failed'),
    seconds: Math.round(seconds * 100) / 100,
    resourcesPerSecond: Math.round(written / Math.max(seconds, 0.001)),
    byType: (summary.byType ?? {}) as Record<string, TypeFigures>,
  };
  console.log(
    `${name}: read ${figures.read}, created ${figures.created}, updated ${figures.updated}, unchanged ${figures.unchanged}, failed ${figures.failed} in ${figures.seconds} s (${figures.resourcesPerSecond} resources/s).`,
  );
  for (const [type, t] of Object.entries(figures.byType))
    console.log(`  ${type}: created ${t.created}, updated ${t.updated}, unchanged ${t.unchanged}, failed ${t.failed}`);
  return figures;
}

/**
 * A few edits as a clinic would make them: a phone number, a provider's new work number (when the
 * directory is carried), two corrected results, a new result.
 */
function simulateChanges(stack: Stack): string[] {
  const store = stack.openemr.store;
  const patientId = store.ids('Patient')[0]!;
  const patient = structuredClone(store.get('Patient', patientId)!) as Record<string, unknown>;
  patient.telecom = [{ system: 'phone', value: '555-0100', use: 'mobile' }];
  store.put(patient as never);
  const changed = [`Patient/${patientId} (telecom)`];
  const practitionerId = loadConfig(stack.env).sync.resourceTypes.includes('Practitioner') ? store.ids('Practitioner')[0] : undefined;
  if (practitionerId) {
    const practitioner = structuredClone(store.get('Practitioner', practitionerId)!) as Record<string, unknown>;
    practitioner.telecom = [{ system: 'phone', value: '(617) 555-0142', use: 'work' }];
    store.put(practitioner as never);
    changed.push(`Practitioner/${practitionerId} (telecom)`);
  }

  const numeric = store
    .ids('Observation')
    .map((id) => store.get('Observation', id) as { id: string; valueQuantity?: { value?: number } })
    .filter((o): o is { id: string; valueQuantity: { value: number } } => typeof o.valueQuantity?.value === 'number')
    .slice(0, 2);
  for (const o of numeric) {
    const copy = structuredClone(o);
    copy.valueQuantity.value = Math.round((copy.valueQuantity.value + 1) * 100) / 100;
    store.put(copy as never);
  }
  const template = structuredClone(numeric[0]!);
  template.id = 'demo-new-observation-0001';
  store.put(template as never);
  return [...changed, ...numeric.map((o) => `Observation/${o.id} (value)`), `Observation/${template.id} (new)`];
}

/** Every source resource, mapped as the connector maps it, must be in the target byte for byte. */
async function verify(stack: Stack): Promise<string[]> {
  const config = loadConfig(stack.env);
  const mapper = createResourceMapper(mappingOptions(config));
  const problems: string[] = [];
  for (const type of config.sync.resourceTypes as SupportedType[]) {
    const target = new Map((await stack.ahds.snapshot(type)).map((r) => [r.id!, r]));
    for (const id of stack.openemr.store.ids(type)) {
      const outcome = mapper.map(stack.openemr.store.get(type, id) as unknown as SyncedResource);
      if (!outcome.ok) continue; // dead-lettered by design, reported by the sync itself
      const stored = target.get(mapper.targetId(type, id));
      if (!stored) problems.push(`${type}/${id} is missing in AHDS`);
      else if (canonicalJson(withoutServerMeta(stored as never)) !== canonicalJson(withoutServerMeta(outcome.resource as never)))
        problems.push(`${type}/${id} differs in AHDS`);
    }
  }
  return problems;
}

async function writeOut(stack: Stack, dir: string, passes: PassFigures[], differences: string[]): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  for (const type of loadConfig(stack.env).sync.resourceTypes) {
    const lines = (await stack.ahds.snapshot(type)).map((r) => JSON.stringify(r));
    fs.writeFileSync(path.join(dir, `${type}.ndjson`), lines.join('\n') + (lines.length ? '\n' : ''));
  }
  fs.writeFileSync(path.join(dir, 'summary.json'), JSON.stringify({ passes, differences }, null, 2) + '\n');
  console.log(`Wrote the target's resources and summary.json to ${dir}.`);
}

function printSummary(passes: PassFigures[], differences: string[]): void {
  console.log('');
  if (differences.length === 0) console.log('Verified: every synced resource is in AHDS exactly as mapped from OpenEMR.');
  else {
    console.log(`Verification FAILED: ${differences.length} difference(s), e.g.`);
    for (const d of differences.slice(0, 10)) console.log(`  ${d}`);
  }
  console.log(JSON.stringify({ ok: differences.length === 0, passes, differences: differences.length }));
}

main().then(
  (code) => {
    if (!args['keep-running'] || code !== 0) process.exit(code);
  },
  (error: unknown) => {
    console.error(`Demo failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
