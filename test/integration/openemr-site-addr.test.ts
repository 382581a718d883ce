import { randomUUID } from 'node:crypto';
import axios from 'axios';
import type { Config } from '../../src/config/load';
import type { TokenSource } from '../../src/http/client';
import { assertionClaims, CLIENT_ASSERTION_TYPE, importSigningKey, signClientAssertion } from '../../src/openemr/assertion';
import { OpenEmrReader } from '../../src/openemr/reader';
import { readSource, type SourceVisitor } from '../../src/openemr/source';
import { NoopTelemetry } from '../../src/telemetry/telemetry';
import { startOpenEmrStandIn, type OpenEmrStandIn } from '../../stack/openemr';
import { loadConfig } from '../../src/config/load';
import { createConnector } from '../../src/connector';
import { MemoryDeadLetterStore } from '../../src/sync/dead-letters';
import { incrementalSync } from '../../src/sync/incremental';
import { startStack, type Stack } from '../../stack';
import { incrementalSettings, mapperFor, reconcileBySearch, targetDiff, trimSource } from '../helpers/incremental-stack';

/**
 * The read layer against the stand-in behind a site_addr_oath that differs from where it listens
 * (OpenEMR behind TLS offload: ServerConfig::getTokenUrl for aud; ExportJob::getStatusReportURL and
 * the Binary URLs from the same global, FhirOperationExportRestController.php), with OpenEMR's own
 * export failures: the 2-minute budget's error[] (the types after the cut are missing from output[]),
 * failing output files, deleted[], and files that expire after an hour.
 *
 * The token here is asked the way discovery tells a client to (aud = the server's own token URL);
 * the connector's token provider is outside this test. What it shows: every search, status poll
 * and download goes to the configured base, never to the site_addr_oath origin (which does not
 * resolve), and an incomplete export never passes for a complete one.
 */

jest.setTimeout(120_000);

const SITE_ADDR = 'http://openemr.internal.invalid:8080';
let openemr: OpenEmrStandIn;
let reader: OpenEmrReader;

/** A bearer token from the stand-in, with the aud its site_addr_oath makes it expect. */
function tokenSource(s: OpenEmrStandIn): TokenSource {
  let token: string | undefined;
  return {
    async getToken() {
      if (token) return token;
      const claims = assertionClaims(s.client.clientId, s.audience, Math.floor(Date.now() / 1000), randomUUID());
      const assertion = await signClientAssertion(claims, await importSigningKey(s.client.privateKeyPem));
      const answer = await axios.post(
        s.tokenUrl,
        new URLSearchParams({
          grant_type: 'client_credentials',
          client_assertion_type: CLIENT_ASSERTION_TYPE,
          client_assertion: assertion,
          scope: s.client.scopes.replace(/\S+\.rs\b/g, '').trim(),
        }).toString(),
        {
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        },
      );
      token = answer.data.access_token as string;
      return token;
    },
    invalidate() {
      token = undefined;
    },
  };
}

/** The reader's OpenEMR settings for the stand-in, as configured with its listening URL. */
function connectionOf(standIn: OpenEmrStandIn): Config['openemr'] {
  return {
    baseUrl: standIn.baseUrl,
    site: 'default',
    fhirBaseUrl: standIn.fhirBaseUrl,
    tokenUrl: standIn.tokenUrl,
    clientId: standIn.client.clientId,
    scopes: standIn.client.scopes,
    readConcurrency: 1,
    pageSize: 200,
  } as Config['openemr'];
}

beforeAll(async () => {
  openemr = await startOpenEmrStandIn({ siteAddrOath: SITE_ADDR });
  const connection = connectionOf(openemr);
  const http = { timeoutMs: 30_000, retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 100, maxTotalMs: 5_000 } };
  reader = new OpenEmrReader(connection, http, tokenSource(openemr), new NoopTelemetry());
});
afterAll(() => openemr?.close());
beforeEach(() => openemr.store.configureExport({ timeBudgetMs: 120_000, msPerResource: 0, faults: {} }));

function recorder() {
  const got = {
    Patient: new Set<string>(),
    Observation: new Set<string>(),
    deleted: [] as string[],
    done: [] as string[],
    logs: [] as string[],
  };
  const visitor: SourceVisitor = {
    patients: async (batch) => batch.forEach((p) => got.Patient.add(p.id!)),
    observations: async (batch) => batch.forEach((o) => got.Observation.add(o.id!)),
    typeDone: async (type, via) => void got.done.push(`${type} via ${via}`),
    deleted: async (type, id) => void got.deleted.push(`${type}/${id}`),
    log: (m) => got.logs.push(m),
  };
  return { got, visitor };
}

async function readEverything() {
  const { got, visitor } = recorder();
  const server = await reader.supportedRelease(true);
  const until = server.now + 86_400_000;
  const result = await readSource(reader, { windows: { Patient: { until }, Observation: { until } }, pageSize: 200, server }, visitor);
  return { got, result };
}

const all = (type: 'Patient' | 'Observation') => new Set(openemr.store.ids(type));

test('behind a site_addr_oath origin, the export is read through the configured base and is complete', async () => {
  expect(openemr.siteAddrOath).toBe(SITE_ADDR);
  const { got, result } = await readEverything();
  expect(result.via).toEqual({ Patient: 'export', Observation: 'export' });
  expect(got.Patient).toEqual(all('Patient'));
  expect(got.Observation).toEqual(all('Observation'));
  expect(got.done).toEqual(['Patient via export', 'Observation via export']);
});

test('searches too: Patient pages and per-Patient Observations, every parameter once', async () => {
  const { got, visitor } = recorder();
  const server = await reader.supportedRelease(true);
  const until = server.now + 86_400_000;
  await readSource(reader, { windows: { Patient: { until }, Observation: { until } }, pageSize: 7, server, searchOnly: true }, visitor);
  expect(got.Patient).toEqual(all('Patient'));
  expect(got.Observation).toEqual(all('Observation'));
});

test("OpenEMR's 2-minute budget cuts the export part-way: the type it finished stays exported, the one in error[] is read by search", async () => {
  // The `type=` list (Patient, Observation: reference order) is exported as written: a budget that
  // lasts through Patient but not Observation leaves Observation unfinished (its timeout in error[]).
  const n = (t: 'Patient' | 'Observation') => openemr.store.ids(t).length;
  openemr.store.configureExport({ timeBudgetMs: n('Patient') + Math.floor(n('Observation') / 2), msPerResource: 1 });
  const { got, result } = await readEverything();
  expect(result.exportAbandoned).toBeUndefined();
  expect(result.exportSearched).toEqual(['Observation']);
  expect(result.via).toEqual({ Patient: 'export', Observation: 'search' });
  expect(got.Patient).toEqual(all('Patient'));
  expect(got.Observation).toEqual(all('Observation'));
  expect(got.done).toEqual(['Patient via export', 'Observation via search']);
});

test('an output file that fails (500, or reset mid-body): its type comes by search, the other stays exported', async () => {
  for (const fault of ['status-500', 'reset'] as const) {
    openemr.store.configureExport({ faults: { failFiles: { Observation: fault } } });
    const { got, result } = await readEverything();
    expect(result.via).toEqual({ Patient: 'export', Observation: 'search' });
    expect(got.Observation).toEqual(all('Observation'));
  }
});

test('deleted[] from the manifest is handed on', async () => {
  openemr.store.configureExport({ faults: { deleted: [{ resourceType: 'Observation', id: 'gone-1' }] } });
  const { got, result } = await readEverything();
  expect(result.via.Observation).toBe('export');
  expect(got.deleted).toEqual(['Observation/gone-1']);
});

describe('the connector itself behind a site_addr_oath origin', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ azurite: true, openemr: { siteAddrOath: SITE_ADDR } });
    trimSource(stack, 200);
  });
  afterAll(() => stack?.close());

  test('authenticates, exports, searches and reconciles: target = source, nothing sent to the site_addr_oath origin', async () => {
    const settings = incrementalSettings(stack, { SYNC_TABLE_PREFIX: 'siteaddr', SYNC_LAG_SECONDS: '0' });
    const connector = await createConnector(loadConfig(settings), { deadLetters: new MemoryDeadLetterStore() });
    const first = await incrementalSync(connector).run({ trigger: 'cli' });
    if (first.skipped) throw new Error('skipped');
    expect(first.value.windows.Patient).toMatchObject({ via: 'export', closed: true });
    expect(first.value.windows.Observation).toMatchObject({ via: 'export', closed: true });
    stack.openemr.store.advanceClock(5);
    const store = stack.openemr.store;
    store.put({ ...store.get('Patient', store.ids('Patient')[0]!)!, gender: 'unknown' } as never);
    store.advanceClock(2);
    const second = await incrementalSync(connector).run({ trigger: 'cli' });
    if (second.skipped) throw new Error('skipped');
    expect(second.value.windows.Patient).toMatchObject({ via: 'search', closed: true });
    expect(second.value.byType.Patient!.updated).toBe(1);
    const summary = await reconcileBySearch(connector);
    expect(summary.status).toBe('ok');
    expect(await targetDiff(stack, mapperFor(settings))).toEqual({ missing: [], stale: [], extra: [] });
  });
});

test('a download outlives a consumer that pauses longer than HTTP_TIMEOUT_MS (as while AHDS throttles): the file times out on total time only', async () => {
  const connection = connectionOf(openemr);
  const impatient = new OpenEmrReader(
    connection,
    { timeoutMs: 500, retry: { maxAttempts: 1, baseDelayMs: 0, maxDelayMs: 0, maxTotalMs: 0 } },
    tokenSource(openemr),
    new NoopTelemetry(),
  );
  const { got, visitor } = recorder();
  let paused = false;
  const slow: SourceVisitor = {
    ...visitor,
    observations: async (batch) => {
      if (!paused) {
        paused = true;
        await new Promise((r) => setTimeout(r, 2000));
      }
      await visitor.observations(batch);
    },
  };
  const server = await impatient.supportedRelease(true);
  const until = server.now + 86_400_000;
  const result = await readSource(impatient, { windows: { Patient: { until }, Observation: { until } }, pageSize: 200, server }, slow);
  expect(paused).toBe(true);
  expect(result.exportAbandoned).toBeUndefined();
  expect(result.via).toEqual({ Patient: 'export', Observation: 'export' });
  expect(got.Observation).toEqual(all('Observation'));
});
