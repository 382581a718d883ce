/**
 * OpenEMR stand-in behind a TLS-offloading proxy: `site_addr_oath` (the siteAddrOath option) is the
 * base URL the server believes it has. src/FHIR/Config/ServerConfig.php:44,165-171 builds the token
 * URL an assertion's aud must equal from it (7.0.3 CustomClientCredentialsGrant.php:332, master
 * JWTClientAuthenticationService.php:267), and the discovery documents, bundle links
 * (FhirResourcesService::createBundle), export status URL (ExportJob::getStatusReportURL) and Binary
 * URLs (FhirOperationExportRestController.php:509) are built from the same value.
 */
import { OpenEmrStandIn, startOpenEmrStandIn } from '../../stack/openemr';
import { assertionForm, fhirGet, getAccessToken, postToken, signAssertion } from '../helpers/openemr-standin-client';

const PUBLIC = 'http://emr.example.test';
let s: OpenEmrStandIn;

beforeAll(async () => {
  s = await startOpenEmrStandIn({ dataDir: null, siteAddrOath: PUBLIC });
  s.store.put({ resourceType: 'Patient', id: 'aaaaaaaa-0000-4000-8000-000000000001', name: [{ family: 'Proxy' }] });
});
afterAll(async () => {
  await s.close();
});

test('the assertion aud must be the token URL built from site_addr_oath, not the URL the request reached', async () => {
  expect(s.audience).toBe(`${PUBLIC}/oauth2/default/token`);
  const listening = await postToken(s, assertionForm(await signAssertion(s, { claims: { aud: s.tokenUrl } })));
  expect([listening.status, listening.body.error]).toEqual([400, 'invalid_client']);
  const matching = await postToken(s, assertionForm(await signAssertion(s, { claims: { aud: s.audience } })));
  expect(matching.status).toBe(200);
});

test('discovery documents name the token endpoint under site_addr_oath', async () => {
  const smart = await fhirGet(s, '/.well-known/smart-configuration');
  expect(smart.body.token_endpoint).toBe(`${PUBLIC}/oauth2/default/token`);
  const oidc = (await fetch(`${s.baseUrl}/oauth2/default/.well-known/openid-configuration`).then((r) => r.json())) as Record<
    string,
    string
  >;
  expect(oidc.token_endpoint).toBe(`${PUBLIC}/oauth2/default/token`);
  expect(oidc.registration_endpoint).toBe(`${PUBLIC}/oauth2/default/registration`);
});

test('bundle links, the export status URL and Binary URLs are built from site_addr_oath', async () => {
  const token = await getAccessToken(s);
  const bundle = await fhirGet(s, '/Patient', token);
  expect(bundle.body.link).toEqual([{ relation: 'self', url: `${PUBLIC}/apis/default/fhir/Patient` }]);
  expect(bundle.body.entry[0].fullUrl).toBe(`${PUBLIC}/apis/default/fhir/Patient/aaaaaaaa-0000-4000-8000-000000000001`);
  const kick = await fhirGet(s, '/$export?type=Patient,Observation', token, { accept: 'application/fhir+json', prefer: 'respond-async' });
  const statusUrl = kick.headers.get('content-location') as string;
  expect(statusUrl.startsWith(`${PUBLIC}/apis/default/fhir/$bulkdata-status?job=`)).toBe(true);
  // Reach it where the stand-in listens, as a proxy would forward it.
  const status = await fhirGet(s, statusUrl.replace(PUBLIC, s.baseUrl), token);
  expect(status.body.output.map((o: { url: string }) => o.url.replace(/\d+$/, 'N'))).toEqual([
    `${PUBLIC}/apis/default/fhir/Binary/N`,
    `${PUBLIC}/apis/default/fhir/Binary/N`,
  ]);
});

test('a site_addr_oath with a trailing slash is used as given (OpenEMR then writes //oauth2)', async () => {
  const slashed = await startOpenEmrStandIn({ dataDir: null, siteAddrOath: `${PUBLIC}/` });
  try {
    expect(slashed.audience).toBe(`${PUBLIC}//oauth2/default/token`);
    expect((await fhirGet(slashed, '/.well-known/smart-configuration')).body.token_endpoint).toBe(`${PUBLIC}//oauth2/default/token`);
  } finally {
    await slashed.close();
  }
});
