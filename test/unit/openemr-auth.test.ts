import { diagnoseOpenEmrAnswer } from '../../src/openemr/auth-diagnosis';
import { acceptsPrivateKeyJwt } from '../../src/openemr/registration';

const ctx = { url: 'https://emr.example.org/apis/default/fhir/metadata', site: 'default', scopesSetting: 'OPENEMR_SCOPES' };

test('private_key_jwt and .rs scopes are registered from 7.0.4 on, and on releases the version does not name', () => {
  expect(['7.0.2', '7.0.3', '7.0.4', '7.1.0', '8.2.0-dev', 'unknown', undefined].map(acceptsPrivateKeyJwt)).toEqual([
    false,
    false,
    true,
    true,
    true,
    true,
    true,
  ]);
});

test('only answers that point at a setting get a sentence, and it never quotes an unexpected body', () => {
  expect(diagnoseOpenEmrAnswer({ status: 401, body: { error: 'invalid_client' } }, ctx)).toBeUndefined();
  expect(diagnoseOpenEmrAnswer({ status: 400, body: { error: 'invalid_client' } }, ctx)).toBeUndefined();
  expect(diagnoseOpenEmrAnswer({ status: 200, body: {} }, ctx)).toBeUndefined();
  const scope = diagnoseOpenEmrAnswer(
    { status: 400, body: { error: 'invalid_scope', hint: 'Check the `<script>Jane Doe</script>` scope' } },
    ctx,
  );
  expect(scope).toMatch(/^OpenEMR does not know the scope that OPENEMR_SCOPES asks for/);
  expect(scope).not.toContain('Jane');
  expect(diagnoseOpenEmrAnswer({ status: 404, body: '<html>Not Found</html>' }, ctx)).toMatch(/set OPENEMR_BASE_URL/);
});
