/**
 * `azd up` works twice and from a pipeline (no Bicep compiler or azd here: the files are read as
 * text, as infra.test.ts does): the package is built remotely and carries only what runs, the Key
 * Vault name survives azd down / azd up, the deployer's principal type is a parameter, and the app
 * starts before its secrets exist.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SETTINGS } from '../../src/config/schema';

const root = path.resolve(__dirname, '../..');
const read = (rel: string) => fs.readFileSync(path.join(root, rel), 'utf8');

/** gitignore-style matching of the patterns .funcignore uses: dir/, globs on a name, plain names. */
function ignoredBy(patterns: string[], file: string): boolean {
  const segments = file.split('/');
  const glob = (p: string) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
  return patterns.some((pattern) => {
    if (pattern.endsWith('/')) {
      const re = glob(pattern.slice(0, -1));
      return segments.slice(0, -1).some((s) => re.test(s));
    }
    const re = glob(pattern);
    return segments.some((s) => re.test(s));
  });
}

const funcignore = read('.funcignore')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));

describe('packaging', () => {
  const tracked = execFileSync('git', ['ls-files'], { cwd: root, encoding: 'utf8' }).split('\n').filter(Boolean);
  // What a developer's folder also holds at deploy time.
  const local = [
    'node_modules/jest/package.json',
    'node_modules/zod/index.js',
    'dist/functions/sync-run.js',
    '.openemr-client/private-key.pem',
    '.openemr-client/jwks.json',
    '.stack/local.settings.json',
    '.stack/tls/key.pem',
    'local.settings.json',
    'coverage/lcov.info',
  ];
  const shipped = [...tracked, ...local].filter((f) => !ignoredBy(funcignore, f));

  it('azure.yaml builds remotely (Flex Consumption): Azure installs and compiles, nothing built here is uploaded', () => {
    const yaml = read('azure.yaml');
    expect(yaml).toMatch(/^\s+api:\s*\n(?:\s+[\w]+:.*\n|\s+#.*\n)*\s+remoteBuild:\s*true\s*$/m);
    expect(JSON.parse(read('package.json')).scripts.build).toMatch(/^tsc -p tsconfig\.json/);
  });

  it('ships what the remote build needs to install and compile, and the maps the app reads', () => {
    expect(shipped).toEqual(
      expect.arrayContaining([
        'package.json',
        'package-lock.json',
        'host.json',
        'tsconfig.json',
        'functions/sync-run.ts',
        'src/connector.ts',
      ]),
    );
    expect(shipped.some((f) => f.startsWith('mappings/') && f.endsWith('.json'))).toBe(true);
  });

  it('ships no dependencies, build output, tests, stand-ins, data, docs, infra, settings or keys', () => {
    const allowedTop = new Set(['package.json', 'package-lock.json', 'host.json', 'tsconfig.json', 'src', 'functions', 'mappings']);
    const stray = shipped.filter((f) => !allowedTop.has(f.split('/')[0]!));
    expect(stray).toEqual([]);
    for (const secret of ['.openemr-client/private-key.pem', '.stack/local.settings.json', '.stack/tls/key.pem', 'local.settings.json'])
      expect(shipped).not.toContain(secret);
  });

  it('git ignores the OpenEMR client key folder and any PEM', () => {
    const out = execFileSync(
      'git',
      ['check-ignore', '.openemr-client/private-key.pem', 'some/where/key.pem', '.stack/local.settings.json'],
      { cwd: root, encoding: 'utf8' },
    );
    expect(out.trim().split('\n')).toHaveLength(3);
  });
});

describe('azd down, then azd up, from a person or a pipeline', () => {
  const vault = read('infra/modules/keyvault.bicep');
  const main = read('infra/main.bicep');
  const params = JSON.parse(read('infra/main.parameters.json')).parameters as Record<string, { value: string }>;

  it('Key Vault purge protection is a parameter, off by default, never set to false (Azure refuses that once on)', () => {
    expect(vault).toMatch(/^param enablePurgeProtection bool = false$/m);
    expect(vault).toMatch(/enablePurgeProtection:\s*enablePurgeProtection \? true : null/);
    expect(vault).not.toMatch(/enablePurgeProtection:\s*true/);
    expect(main).toMatch(/^param keyVaultPurgeProtection bool = false$/m);
    expect(main).toMatch(/enablePurgeProtection:\s*keyVaultPurgeProtection/);
  });

  it('the vault name is stable per environment and can be overridden (a soft-deleted vault never blocks a redeploy for good)', () => {
    expect(main).toMatch(/name:\s*empty\(keyVaultName\) \? 'kv-\$\{resourceToken\}' : keyVaultName/);
    expect(params.keyVaultName?.value).toBe('${KEY_VAULT_NAME=}');
  });

  it('principalType comes from AZURE_PRINCIPAL_TYPE (ServicePrincipal in a pipeline), User by default, and no role assignment of the deployer hard-codes it', () => {
    expect(params.principalType?.value).toBe('${AZURE_PRINCIPAL_TYPE=User}');
    expect(main).toMatch(/officerPrincipalType:\s*principalType/);
    expect(vault).toMatch(/principalType:\s*officerPrincipalType/);
    for (const file of fs.readdirSync(path.join(root, 'infra/modules'))) {
      expect(`${file}: ${/principalType:\s*'User'/.test(read(`infra/modules/${file}`))}`).toBe(`${file}: false`);
    }
  });
});

describe('the app starts unconfigured', () => {
  const app = read('infra/modules/functionapp.bicep');
  const settingsBlock = app.slice(app.indexOf("name: 'appsettings'"));

  it('only the two secrets are Key Vault references: until they are stored, the settings check names them and everything else resolves', () => {
    const references = [...settingsBlock.matchAll(/^\s*(\w+):\s*'@Microsoft\.KeyVault\(/gm)].map((m) => m[1]);
    expect(references.sort()).toEqual(['OPENEMR_CLIENT_ID', 'OPENEMR_PRIVATE_KEY']);
    for (const s of SETTINGS.filter((x) => x.required)) expect(settingsBlock).toMatch(new RegExp(`^\\s*${s.name}:`, 'm'));
  });

  it('no function file throws at load on a bad setting (it logs the sentence; calls answer "Not configured")', () => {
    const runtime = read('functions/shared/runtime.ts');
    const check = runtime.slice(runtime.indexOf('export function checkSettingsAtStartup'));
    expect(check.slice(0, check.indexOf('\n}\n'))).not.toMatch(/throw clean|throw new ConfigError/);
  });

  it('the README deploy section says what happens before the secrets are stored, and how to check', () => {
    const readme = read('README.md');
    const deploy = readme.slice(readme.indexOf('## Deploy'), readme.indexOf('## Operate'));
    for (const phrase of ['remoteBuild', 'Not configured', '/api/health', 'AZURE_PRINCIPAL_TYPE', 'KEY_VAULT_NAME', 'azd down --purge'])
      expect(deploy).toContain(phrase);
  });
});
