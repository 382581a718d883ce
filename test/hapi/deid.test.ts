import { syncRunHandler } from '../../functions/sync-run';
import type { Stack } from '../../stack';
import { auditDeidentified, expectClean } from '../helpers/deid-audit';
import { DEID_TYPES, servedSource, startDeidFeed } from '../helpers/deid-source';
import { completeRun, invoke } from '../helpers/functions';
import { mapperFor } from '../helpers/incremental-stack';
import { hapiAll, hapiDiff } from './hapi-target';

/**
 * A de-identified feed to a research server: DEID_MODE=on, a full sync of the sample data (every
 * type the OpenEMR stand-in serves and the connector carries) into a real HAPI FHIR JPA server
 * (stack/hapi, HL7's validator judging every write, referential integrity on), then everything read
 * back from HAPI and audited from the outside (test/helpers/deid-audit.ts): no identifying value of
 * the source (names, addresses, telecom, identifiers, narrative, notes, reference displays, ids)
 * anywhere, every id a keyed hash, every reference answered by HAPI, every date of a patient moved
 * by that patient's one shift, and 0 validator errors.
 */
const TYPES = DEID_TYPES;
const DEID_KEY = 'hapi-deid-test-key-0123456789abcdef0123';
let stack: Stack;
let settings: Record<string, string>;

beforeAll(async () => {
  ({ stack, settings } = await startDeidFeed('hapideid', DEID_KEY, { target: 'hapi', hapi: { log: (l) => console.log(l) } }));
}, 900_000);
afterAll(() => stack?.close());

test('a de-identified full sync into HAPI: nothing identifying arrives, ids are hashed, every reference resolves in HAPI, dates move by one shift per patient, 0 validator errors', async () => {
  await stack.hapi!.resetValidationReport();
  const accepted = await invoke(syncRunHandler, { url: 'sync/run', query: { full: 'true' } });
  const status = await completeRun(stack, accepted);
  expect(status).toMatchObject({ state: 'succeeded', done: true });
  expect(status.result).toMatchObject({ status: 'ok', failed: 0, deadLettered: 0 });

  // HAPI holds exactly the de-identified mapping of the source.
  const d = await hapiDiff(stack, mapperFor({ ...stack.env, ...settings }), TYPES);
  expect(d).toEqual({ missing: [], stale: [], extra: [], unmappable: d.unmappable });

  const store = stack.openemr.store;
  const source = servedSource(store);
  const written: Array<Record<string, any>> = [];
  for (const type of TYPES) written.push(...(await hapiAll(stack.hapi!.fhirUrl, type)));
  expect(written.length).toBe(source.length - d.unmappable);
  const audit = auditDeidentified({ source, written, key: DEID_KEY });
  console.log(
    `De-identified into HAPI: ${written.length} resources (${TYPES.join(', ')}); looked for ${audit.counts.values} identifying values and ${audit.counts.ids} source ids; ` +
      `${audit.counts.dates} dates compared over ${audit.shifts.size} patients (shifts ${Math.min(...audit.shifts.values())}..${Math.max(...audit.shifts.values())} days); ${audit.counts.references} distinct references; ` +
      `${audit.counts.ninetyOrOlder} Patients 90 or older, written as ${JSON.stringify(written.filter((r) => r.resourceType === 'Patient' && /^\d{4}$/.test(r.birthDate)).map((r) => r.birthDate))}`,
  );
  expectClean(audit, { patients: store.count('Patient'), written: written.length });
  // Ages over 89 are one category: the sample's Patient born in 1929 (and, from 2029, the one born in 1939) is there to be grouped.
  expect(audit.counts.ninetyOrOlder).toBeGreaterThan(0);
  // The injected free text and the sample's narratives and displays were there to be found.
  expect(audit.counts.values).toBeGreaterThan(100);

  // Every reference answered by HAPI itself.
  const failed: string[] = [];
  for (const ref of audit.references) {
    const res = await fetch(`${stack.hapi!.fhirUrl}/${ref}`, { headers: { accept: 'application/fhir+json' } });
    await res.arrayBuffer();
    if (res.status !== 200) failed.push(`${ref}: ${res.status}`);
  }
  expect(failed).toEqual([]);

  const report = await stack.hapi!.validationReport();
  console.log(
    `HAPI validator on the de-identified sync: ${report.requests} requests judged\n${report.issues.map((i) => `${i.severity}\t${i.count}\t${i.messageId}\t${i.path}`).join('\n')}`,
  );
  expect(report.requests).toBeGreaterThan(0);
  expect(report.issues.filter((i) => i.severity === 'error' || i.severity === 'fatal')).toEqual([]);
});
