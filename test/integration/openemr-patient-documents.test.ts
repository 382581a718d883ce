/**
 * A patient document end to end. OpenEMR serves an uploaded document as a DocumentReference whose
 * attachment has no data but a url into its own API (royharden/openemr
 * src/Services/FHIR/DocumentReference/FhirPatientDocumentReferenceService.php parseOpenEMRRecord, and
 * Trait/FhirDocumentReferenceTrait.php populateContent: `getFhirApiURL() . '/fhir/Binary/' . uuid`,
 * the mimeTypeSufficient format code, the document's name as title). The stand-in serves one beside
 * its OpenEMR-shaped resources (openemr-shapes.ts); the connector carries the document's description
 * and drops the url (src/mapping/attachments.ts: a Binary the target does not hold, behind OpenEMR's
 * credentials), so the target's attachment keeps contentType and title only.
 */
import { loadConfig } from '../../src/config/load';
import { createConnector, type Connector } from '../../src/connector';
import { MemoryDeadLetterStore } from '../../src/sync/dead-letters';
import { incrementalSync } from '../../src/sync/incremental';
import { startStack, type Stack } from '../../stack';
import { SHAPED_IDS } from '../../stack/openemr';
import type { SupportedType } from '../../stack/openemr';
import { fhirGet, getAccessToken } from '../helpers/openemr-standin-client';
import { incrementalSettings, mapperFor, targetDiff } from '../helpers/incremental-stack';

jest.setTimeout(120_000);

type Json = Record<string, any>;
const TYPES: SupportedType[] = ['Patient', 'Observation', 'DiagnosticReport', 'DocumentReference'];

let stack: Stack;
let settings: Record<string, string>;
let connector: Connector;

beforeAll(async () => {
  stack = await startStack({ azurite: true, dataDir: null, openemr: { openEmrShapes: true } });
  settings = incrementalSettings(stack, {
    SYNC_TABLE_PREFIX: 'patientdocs',
    SYNC_RESOURCE_TYPES: TYPES.join(','),
    SYNC_LAG_SECONDS: '0',
    SYNC_OVERLAP_SECONDS: '0',
  });
  connector = await createConnector(loadConfig(settings), { deadLetters: new MemoryDeadLetterStore() });
});
afterAll(() => stack?.close());

test('OpenEMR serves the patient document with a url to its own Binary route and no data', async () => {
  const token = await getAccessToken(stack.openemr, 'system/DocumentReference.read');
  const res = await fhirGet(stack.openemr, `/DocumentReference/${SHAPED_IDS.patientDocument}`, token);
  expect(res.status).toBe(200);
  expect(res.body.content).toEqual([
    {
      attachment: {
        contentType: 'application/pdf',
        url: `${stack.openemr.siteAddrOath}/apis/${stack.openemr.site}/fhir/Binary/${SHAPED_IDS.patientDocument}`,
        title: 'outside-records.pdf',
      },
      format: {
        system: 'http://ihe.net/fhir/ValueSet/IHE.FormatCode.codesystem',
        code: 'urn:ihe:iti:xds:2017:mimeTypeSufficient',
        display: 'mimeType Sufficient',
      },
    },
  ]);
});

test('a sync writes the document without the Binary url, keeping what the document is, and the target equals the mapped source', async () => {
  const outcome = await incrementalSync(connector).run({ trigger: 'cli' });
  if (outcome.skipped) throw new Error('skipped');
  expect(outcome.value).toMatchObject({ failed: 0, deadLettered: 0 });

  const written = (await stack.ahds.read('DocumentReference', SHAPED_IDS.patientDocument)) as Json | undefined;
  expect(written).toBeDefined();
  expect(written!.content).toEqual([
    {
      attachment: { contentType: 'application/pdf', title: 'outside-records.pdf' },
      format: {
        system: 'http://ihe.net/fhir/ValueSet/IHE.FormatCode.codesystem',
        code: 'urn:ihe:iti:xds:2017:mimeTypeSufficient',
        display: 'mimeType Sufficient',
      },
    },
  ]);
  expect(JSON.stringify(written)).not.toContain('/Binary/');
  expect(written!.subject).toEqual(expect.objectContaining({ reference: expect.stringMatching(/^Patient\//) }));
  // The lab report and the radiology note of the other sub-services came too, their attachment (the note) inline.
  const note = (await stack.ahds.read('DiagnosticReport', SHAPED_IDS.radiologyNote)) as Json | undefined;
  expect(note?.presentedForm?.[0]?.data).toBeDefined();
  expect(await stack.ahds.read('DiagnosticReport', SHAPED_IDS.labReport)).toBeDefined();
  expect(await targetDiff(stack, mapperFor(settings), TYPES)).toEqual({ missing: [], stale: [], extra: [] });
});
