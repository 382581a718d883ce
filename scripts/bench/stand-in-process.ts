/**
 * One stand-in of the benchmark in a process of its own, driven over IPC by bench.ts
 * (stand-in-processes.ts). A process of its own gives it an event loop and a heap of its own, and
 * lets the benchmark give it CPUs of its own: in Azure the FHIR service never shares a CPU with the
 * connector, and OpenEMR runs on a server of its own.
 *
 * - role "openemr": generates and loads the benchmark data itself (same seed, same resources as the
 *   bench plans), then serves OpenEMR's FHIR API.
 * - role "ahds": an Entra stand-in and an AHDS stand-in that trusts it; at the end it checks that it
 *   holds every generated resource.
 */
import type { FaultProfile } from '../../stack/faults';
import { startAhdsStandIn } from '../../stack/ahds';
import { startEntraStandIn } from '../../stack/entra';
import { startOpenEmrStandIn, type SupportedType } from '../../stack/openemr';
import { allResources, dependentsOf, directoryOf, loadTemplates, planOf, type BenchDataPlan } from './data';

export type StandInSpec =
  { role: 'openemr'; data: BenchDataPlan; faults: FaultProfile } | { role: 'ahds'; faults: FaultProfile; capacity?: number };

export interface OpenEmrReady {
  baseUrl: string;
  site: string;
  clientId: string;
  privateKeyPem: string;
  counts: Record<string, number>;
  loadMs: number;
}

export interface AhdsReady {
  fhirUrl: string;
  audience: string;
  entra: { tenantId: string; clientId: string; clientSecret: string; authorityHost: string };
}

export interface VerifyResult {
  expected: number;
  found: number;
  missing: string[];
}

export type StandInRequest = { id: number; op: string; arg?: unknown };
export type StandInMessage = { ready: unknown } | { fatal: string } | { id: number; value?: unknown; error?: string };

type Handler = (arg: unknown) => unknown;

function send(message: StandInMessage): void {
  process.send?.(message);
}

async function startOpenEmr(
  spec: Extract<StandInSpec, { role: 'openemr' }>,
): Promise<{ ready: OpenEmrReady; ops: Record<string, Handler>; close(): Promise<void> }> {
  const t = performance.now();
  const openemr = await startOpenEmrStandIn({ dataDir: null, faults: spec.faults });
  const templates = loadTemplates();
  const planned = planOf(templates, spec.data);
  openemr.store.importResources(directoryOf(templates, planned));
  openemr.store.importResources(planned.map((p) => p.patient));
  openemr.store.importResources(
    (function* () {
      for (const p of planned) yield* dependentsOf(templates, p);
    })(),
  );
  return {
    ready: {
      baseUrl: openemr.baseUrl,
      site: openemr.site,
      clientId: openemr.client.clientId,
      privateKeyPem: openemr.client.privateKeyPem,
      counts: Object.fromEntries(
        ['Patient', 'Observation', ...(spec.data.types ?? [])].map((t) => [t, openemr.store.count(t as SupportedType)]),
      ),
      loadMs: Math.round(performance.now() - t),
    },
    ops: {
      stats: () => openemr.stats(),
      resetStats: () => openemr.resetStats(),
      now: () => openemr.store.now(),
    },
    close: () => openemr.close(),
  };
}

async function startAhds(
  spec: Extract<StandInSpec, { role: 'ahds' }>,
): Promise<{ ready: AhdsReady; ops: Record<string, Handler>; close(): Promise<void> }> {
  const entra = await startEntraStandIn();
  const ahds = await startAhdsStandIn({ entra, faults: spec.faults, capacity: spec.capacity });
  return {
    ready: {
      fhirUrl: ahds.fhirUrl,
      audience: ahds.audience,
      entra: { tenantId: entra.tenantId, clientId: entra.clientId, clientSecret: entra.clientSecret, authorityHost: entra.authorityHost },
    },
    ops: {
      stats: () => ahds.stats(),
      resetStats: () => ahds.resetStats(),
      tokenRequests: () => entra.stats().tokenRequests,
      issueToken: () => entra.issueToken(entra.clientId, ahds.audience),
      stored: () => ahds.store.resourceTypes().reduce((n, type) => n + ahds.store.liveCount(type), 0),
      verify: (arg) => {
        const plan = arg as BenchDataPlan;
        const templates = loadTemplates();
        const result: VerifyResult = { expected: 0, found: 0, missing: [] };
        for (const r of allResources(templates, planOf(templates, plan))) {
          result.expected++;
          const head = ahds.store.head(r.resourceType, r.id);
          if (head && !head.deleted) result.found++;
          else if (result.missing.length < 10) result.missing.push(`${r.resourceType}/${r.id}`);
        }
        return result;
      },
    },
    async close() {
      await ahds.close();
      await entra.close();
    },
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.env.BENCH_STAND_IN ?? 'null') as StandInSpec | null;
  if (!spec || !process.send) throw new Error('stand-in-process.js is started by the benchmark (BENCH_STAND_IN and an IPC channel)');
  const standIn = spec.role === 'openemr' ? await startOpenEmr(spec) : await startAhds(spec);
  const ops: Record<string, Handler> = { ...standIn.ops, cpu: () => process.cpuUsage() };
  process.on('message', (req: StandInRequest) => {
    if (req.op === 'close') {
      void standIn.close().finally(() => {
        send({ id: req.id, value: null });
        process.disconnect();
      });
      return;
    }
    Promise.resolve()
      .then(() => {
        const op = ops[req.op];
        if (!op) throw new Error(`unknown op ${req.op}`);
        return op(req.arg);
      })
      .then(
        (value) => send({ id: req.id, value: value ?? null }),
        (error: unknown) => send({ id: req.id, error: String((error as Error)?.message ?? error) }),
      );
  });
  send({ ready: standIn.ready });
}

main().catch((error: unknown) => {
  send({ fatal: String((error as Error)?.stack ?? error) });
  process.exitCode = 1;
  process.disconnect?.();
});
