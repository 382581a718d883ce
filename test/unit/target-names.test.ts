import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { InvocationContext } from '@azure/functions';
import { errorResponse } from '../../functions/shared/http';
import { createAhdsWriter, targetName } from '../../src/ahds/writer';
import { loadConfig } from '../../src/config/load';
import { UpstreamError } from '../../src/http/errors';
import { createTargetWriter } from '../../src/target';
import { RecordingTelemetry } from '../../src/telemetry/telemetry';
import { makeRsaKey } from '../helpers/keys';
import { minimalSettings } from '../helpers/settings';

/**
 * A FHIR server on loopback that lists batch and PUT-create of Patient, and answers each batch as
 * `answer` says: an entry refused with 422, or the whole bundle refused with 403 or 400.
 */
async function fhirServer(): Promise<{ url: string; answer: { mode: 'entry' | 'forbidden' | 'bad' }; close(): Promise<void> }> {
  const answer: { mode: 'entry' | 'forbidden' | 'bad' } = { mode: 'entry' };
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/fhir+json');
      if (req.url === '/metadata') {
        res.end(
          JSON.stringify({
            resourceType: 'CapabilityStatement',
            fhirVersion: '4.0.1',
            rest: [
              {
                mode: 'server',
                interaction: [{ code: 'batch' }],
                resource: [{ type: 'Patient', updateCreate: true, interaction: [{ code: 'update' }, { code: 'read' }] }],
              },
            ],
          }),
        );
        return;
      }
      const outcome = { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'processing', diagnostics: 'refused' }] };
      if (answer.mode !== 'entry') {
        res.statusCode = answer.mode === 'forbidden' ? 403 : 400;
        res.end(JSON.stringify(outcome));
        return;
      }
      res.end(
        JSON.stringify({
          resourceType: 'Bundle',
          type: 'batch-response',
          entry: [{ response: { status: '422 Unprocessable Entity', outcome } }],
        }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, answer, close: () => new Promise((r) => server.close(() => r())) };
}

const patient = { resourceType: 'Patient' as const, id: 'p1', gender: 'female' as const };

describe("the writer's errors name the target of TARGET_KIND", () => {
  test('a generic FHIR server (TARGET_KIND=fhir) is named the target FHIR server, never AHDS, in entry, bundle and HTTP errors', async () => {
    const server = await fhirServer();
    try {
      const { pem } = await makeRsaKey();
      const config = loadConfig(
        minimalSettings(pem, {
          AHDS_FHIR_URL: undefined,
          TARGET_KIND: 'fhir',
          TARGET_FHIR_URL: server.url,
          TARGET_AUTH: 'none',
          SYNC_RESOURCE_TYPES: 'Patient',
        }),
      );
      const { writer } = await createTargetWriter(
        config,
        new RecordingTelemetry(),
        () => {
          throw new Error('no credential for TARGET_AUTH=none');
        },
        { warn: () => undefined },
      );

      const [entry] = await writer.writeAll([patient]);
      expect(entry).toMatchObject({ outcome: 'failed', status: 422 });
      expect(entry!.reason).toMatch(/^Target FHIR server answered 422/);

      server.answer.mode = 'bad';
      const [bad] = await writer.writeAll([patient]);
      expect(bad).toMatchObject({ outcome: 'failed', status: 400 });
      expect(bad!.reason).toMatch(/^Target FHIR server answered 400/);

      server.answer.mode = 'forbidden';
      const refused = await writer.writeAll([patient]).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(UpstreamError);
      expect((refused as Error).message).toMatch(
        /^Target FHIR server refused every write of a bundle \(403\): give the connector's client write access/,
      );
      // The HTTP answer an endpoint builds from it names the same side (functions/shared/http.ts).
      const answer = errorResponse(refused, new InvocationContext({ invocationId: 'names', logHandler: () => undefined }));
      const said = (answer.jsonBody as { issue: Array<{ diagnostics: string }> }).issue[0]!.diagnostics;
      expect(said).toMatch(/^Target FHIR server refused the request: Target FHIR server refused every write/);
      for (const message of [entry!.reason, bad!.reason, (refused as Error).message, said]) expect(message).not.toMatch(/AHDS|Data Writer/);
    } finally {
      await server.close();
    }
  });

  test('AHDS (the default kind) keeps its name and its role advice', async () => {
    const server = await fhirServer();
    try {
      const { pem } = await makeRsaKey();
      const config = loadConfig(minimalSettings(pem, { AHDS_FHIR_URL: server.url }));
      expect(targetName(config.target.kind)).toBe('AHDS FHIR service');
      const writer = createAhdsWriter(
        { ...config.ahds, fhirUrl: server.url },
        config.http,
        { getToken: async () => 't', invalidate: () => undefined },
        new RecordingTelemetry(),
        {
          checkTypes: ['Patient'],
        },
      );
      const [entry] = await writer.writeAll([patient]);
      expect(entry!.reason).toMatch(/^AHDS FHIR service answered 422/);
      server.answer.mode = 'forbidden';
      await expect(writer.writeAll([patient])).rejects.toThrow(
        /^AHDS FHIR service refused every write of a bundle \(403\): give the connector's identity the FHIR Data Writer role/,
      );
    } finally {
      await server.close();
    }
  });
});
