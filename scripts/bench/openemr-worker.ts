/**
 * The OpenEMR stand-in of the benchmark, on a worker thread of the bench process: it generates and
 * loads the benchmark data itself (same seed, same resources as the main thread plans) and serves
 * with an event loop of its own, as OpenEMR runs on a server of its own. On one event loop with the
 * AHDS stand-in, every OpenEMR answer would wait behind bundle validation, an artefact that would
 * make reads look slower than they are.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { FaultProfile } from '../../stack/faults';
import { startOpenEmrStandIn } from '../../stack/openemr';
import { loadTemplates, observationsOf, planPatients } from './data';

export interface OpenEmrWorkerData {
  patients: number;
  observations: number;
  seed: number;
  faults: FaultProfile;
}

export type OpenEmrWorkerRequest = { id: number; op: 'stats' | 'resetStats' | 'now' | 'close' };

async function main(): Promise<void> {
  const data = workerData as OpenEmrWorkerData;
  const t = performance.now();
  const openemr = await startOpenEmrStandIn({ dataDir: null, faults: data.faults });
  const templates = loadTemplates();
  const planned = planPatients(templates, data.patients, data.observations, data.seed);
  openemr.store.importResources(planned.map((p) => p.patient));
  openemr.store.importResources(
    (function* () {
      for (const p of planned) yield* observationsOf(templates, p);
    })(),
  );
  parentPort!.postMessage({
    ready: true,
    baseUrl: openemr.baseUrl,
    site: openemr.site,
    clientId: openemr.client.clientId,
    privateKeyPem: openemr.client.privateKeyPem,
    counts: { Patient: openemr.store.count('Patient'), Observation: openemr.store.count('Observation') },
    loadMs: Math.round(performance.now() - t),
  });
  parentPort!.on('message', async (req: OpenEmrWorkerRequest) => {
    let value: unknown;
    if (req.op === 'stats') value = openemr.stats();
    else if (req.op === 'resetStats') openemr.resetStats();
    else if (req.op === 'now') value = openemr.store.now();
    else if (req.op === 'close') {
      await openemr.close();
      parentPort!.postMessage({ id: req.id, value: null });
      parentPort!.close();
      return;
    }
    parentPort!.postMessage({ id: req.id, value });
  });
}

main().catch((error: unknown) => {
  parentPort!.postMessage({ error: String((error as Error)?.stack ?? error) });
});
