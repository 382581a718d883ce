/**
 * One worker process of the app-wide budget test: a writer over the AHDS stand-in whose bundles also
 * take slots of the Table-storage budget, writing BUDGET_BUNDLES single-bundle batches of its own.
 */
import { TableClient } from '@azure/data-tables';
import { TableBundleBudget } from '../../src/ahds/table-budget';
import { AhdsWriter } from '../../src/ahds/writer';
import type { SyncedResource } from '../../src/fhir/types';
import { createHttpClient } from '../../src/http/client';
import { NoopTelemetry } from '../../src/telemetry/telemetry';

export async function main(): Promise<number> {
  const env = process.env;
  const retry = { maxAttempts: 6, baseDelayMs: 5, maxDelayMs: 50, maxTotalMs: 60_000 };
  const telemetry = new NoopTelemetry();
  const http = createHttpClient({
    side: 'ahds',
    baseURL: env.BUDGET_FHIR_URL!,
    timeoutMs: 30_000,
    retry,
    telemetry,
    dependencyName: 'AHDS FHIR',
  });
  const table = TableClient.fromConnectionString(env.BUDGET_STORAGE!, env.BUDGET_TABLE!, { allowInsecureConnection: true });
  await table.createTable();
  const budget = new TableBundleBudget(async () => table, Number(env.BUDGET_SLOTS), 60_000);
  const writer = new AhdsWriter({ http, batchSize: 5, maxConcurrency: 8, initialConcurrency: 8, retry, budget, telemetry });
  const resources = Array.from({ length: Number(env.BUDGET_BUNDLES) * 5 }, (_, i) => ({
    resourceType: 'Patient',
    id: `${env.BUDGET_WORKER}-${i}`,
    name: [{ family: 'Budget' }],
  })) as SyncedResource[];
  const results = await writer.writeAll(resources);
  process.stdout.write(`${JSON.stringify({ written: results.filter((r) => r.outcome !== 'failed').length, peak: writer.limiter.peak })}\n`);
  return 0;
}
