/**
 * Structural checks of infra/ (no Bicep compiler installs here): parameters, module wiring, role
 * assignments, app settings against src/config/schema.ts, secrets, the workbook and the alert
 * queries against src/telemetry/names.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SETTINGS } from '../../src/config/schema';
import { KNOWN_RESOURCE_TYPES } from '../../src/sync/resource-types';
import { EVENTS, METRICS } from '../../src/telemetry/names';

const root = path.resolve(__dirname, '../..');
const infra = path.join(root, 'infra');
const read = (rel: string) => fs.readFileSync(path.join(root, rel), 'utf8');

const bicepFiles = [
  'infra/main.bicep',
  ...fs
    .readdirSync(path.join(infra, 'modules'))
    .filter((f) => f.endsWith('.bicep'))
    .map((f) => `infra/modules/${f}`),
];

/** Blanks out comments and string contents (keeping ${...} interpolations) so braces and names in text do not count. */
function stripStringsAndComments(src: string): string {
  let out = '';
  let i = 0;
  while (i < src.length) {
    if (src.startsWith("'''", i)) {
      const end = src.indexOf("'''", i + 3);
      const stop = end === -1 ? src.length : end + 3;
      out += "'''" + ' '.repeat(Math.max(0, stop - i - 6)) + "'''";
      i = stop;
    } else if (src[i] === "'") {
      let j = i + 1;
      let body = '';
      while (j < src.length && src[j] !== "'") {
        if (src[j] === '\\') {
          body += '  ';
          j += 2;
          continue;
        }
        if (src.startsWith('${', j)) {
          // keep the interpolation: it references params and vars
          let depth = 0;
          let k = j + 1;
          for (; k < src.length; k++) {
            if (src[k] === '{') depth++;
            else if (src[k] === '}' && --depth === 0) break;
          }
          body += src.slice(j, k + 1);
          j = k + 1;
          continue;
        }
        body += src[j] === '\n' ? '\n' : ' ';
        j++;
      }
      out += "'" + body + "'";
      i = j + 1;
    } else if (src.startsWith('//', i)) {
      const end = src.indexOf('\n', i);
      const stop = end === -1 ? src.length : end;
      out += ' '.repeat(stop - i);
      i = stop;
    } else if (src.startsWith('/*', i)) {
      const end = src.indexOf('*/', i + 2);
      const stop = end === -1 ? src.length : end + 2;
      out += src.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else {
      out += src[i];
      i++;
    }
  }
  return out;
}

/** The text between the brace at or after `from` and its partner (code must be stripped first). */
function block(code: string, from: number): { body: string; start: number; end: number } {
  const open = code.indexOf('{', from);
  let depth = 0;
  for (let i = open; i < code.length; i++) {
    if (code[i] === '{') depth++;
    else if (code[i] === '}' && --depth === 0) return { body: code.slice(open + 1, i), start: open + 1, end: i };
  }
  throw new Error(`unbalanced braces after offset ${from}`);
}

/** Keys at the top level of an object body. */
function topLevelKeys(body: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (const line of body.split('\n')) {
    if (depth === 0) {
      const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:/.exec(line);
      if (m) keys.push(m[1]);
    }
    for (const ch of line) {
      if (ch === '{' || ch === '[') depth++;
      else if (ch === '}' || ch === ']') depth--;
    }
  }
  return keys;
}

interface Param {
  name: string;
  type: string;
  hasDefault: boolean;
  defaultText?: string;
  decorators: string[];
  line: number;
}

function params(src: string): Param[] {
  const lines = src.split('\n');
  const out: Param[] = [];
  lines.forEach((line, i) => {
    const m = /^param\s+([A-Za-z_]\w*)\s+(\w+)(\s*=\s*(.*))?$/.exec(line.trim());
    if (!m) return;
    const decorators: string[] = [];
    for (let j = i - 1; j >= 0; j--) {
      const prev = lines[j].trim();
      if (!prev.startsWith('@')) break;
      decorators.push(prev);
    }
    out.push({ name: m[1], type: m[2], hasDefault: !!m[3], defaultText: m[4]?.trim(), decorators, line: i });
  });
  return out;
}

function modules(code: string): Array<{ symbol: string; file: string; params: string[] }> {
  const out: Array<{ symbol: string; file: string; params: string[] }> = [];
  // module paths are string literals: read them from the raw source at the same offsets
  const re = /^module\s+(\w+)\s+'([^']*)'/gm;
  let m: RegExpExecArray | null;
  while ((m = re.exec(code))) {
    const { body } = block(code, m.index);
    const p = /\bparams\s*:\s*\{/.exec(body);
    const passed = p ? topLevelKeys(block(body, p.index).body) : [];
    out.push({ symbol: m[1], file: m[2], params: passed });
  }
  return out;
}

const sources = Object.fromEntries(bicepFiles.map((f) => [f, read(f)]));
const codes = Object.fromEntries(bicepFiles.map((f) => [f, stripStringsAndComments(sources[f])]));

describe('Bicep parameters', () => {
  it.each(bicepFiles)('%s: every param has a @description', (file) => {
    const missing = params(sources[file]).filter((p) => !p.decorators.some((d) => d.startsWith('@description(')));
    expect(missing.map((p) => p.name)).toEqual([]);
  });

  it.each(bicepFiles)('%s: every param is used somewhere else in its file', (file) => {
    const code = codes[file];
    const lines = code.split('\n');
    const unused = params(sources[file]).filter((p) => {
      const rest = lines.filter((_, i) => i !== p.line).join('\n');
      return !new RegExp(`\\b${p.name}\\b`).test(rest);
    });
    expect(unused.map((p) => p.name)).toEqual([]);
  });

  it.each(bicepFiles)('%s: @secure() params have no default but an empty one', (file) => {
    for (const p of params(sources[file]).filter((x) => x.decorators.includes('@secure()'))) {
      if (p.hasDefault) expect(p.defaultText).toBe("''");
    }
  });

  it('no param that looks like a secret is left without @secure()', () => {
    for (const file of bicepFiles) {
      for (const p of params(sources[file])) {
        if (
          /privatekey|secret$|password|connectionstring/i.test(p.name) &&
          !/SecretUri$/i.test(p.name) &&
          !/appInsightsConnectionString/.test(p.name)
        ) {
          expect(`${file}:${p.name}:${p.decorators.includes('@secure()')}`).toBe(`${file}:${p.name}:true`);
        }
      }
    }
  });

  it('main.parameters.json maps only declared params, covers every required one, and carries no secret', () => {
    const json = JSON.parse(read('infra/main.parameters.json'));
    const declared = params(sources['infra/main.bicep']);
    const names = new Set(declared.map((p) => p.name));
    for (const key of Object.keys(json.parameters)) expect(names.has(key)).toBe(true);
    for (const p of declared.filter((x) => !x.hasDefault)) expect(Object.keys(json.parameters)).toContain(p.name);
    for (const p of declared.filter((x) => x.decorators.includes('@secure()'))) expect(Object.keys(json.parameters)).not.toContain(p.name);
    expect(json.parameters.environmentName.value).toBe('${AZURE_ENV_NAME}');
    expect(json.parameters.location.value).toBe('${AZURE_LOCATION}');
  });
});

describe('Bicep modules', () => {
  const mods = bicepFiles.flatMap((file) =>
    modules(codes[file]).map((m) => ({ ...m, from: file, file: sourcesModulePath(file, m.symbol) })),
  );

  function sourcesModulePath(from: string, symbol: string): string {
    const m = new RegExp(`^module\\s+${symbol}\\s+'([^']+)'`, 'm').exec(sources[from]);
    return path.posix.join(path.posix.dirname(from), m![1]);
  }

  it('main.bicep uses every module file, and each exists', () => {
    const used = new Set(mods.map((m) => m.file));
    for (const f of bicepFiles.filter((x) => x.startsWith('infra/modules/'))) expect(used).toContain(f);
    for (const f of used) expect(fs.existsSync(path.join(root, f))).toBe(true);
  });

  it('every param passed to a module exists there, and every required module param is passed', () => {
    expect(mods.length).toBeGreaterThan(5);
    for (const m of mods) {
      const declared = params(read(m.file));
      const names = declared.map((p) => p.name);
      for (const passed of m.params) expect(`${m.symbol}.${passed}:${names.includes(passed)}`).toBe(`${m.symbol}.${passed}:true`);
      for (const p of declared.filter((x) => !x.hasDefault))
        expect(`${m.symbol}.${p.name}:${m.params.includes(p.name)}`).toBe(`${m.symbol}.${p.name}:true`);
    }
  });

  it('module outputs referenced from main.bicep are declared by the module', () => {
    const main = codes['infra/main.bicep'];
    for (const m of mods.filter((x) => x.from === 'infra/main.bicep')) {
      const outputs = new Set([...read(m.file).matchAll(/^output\s+(\w+)/gm)].map((x) => x[1]));
      for (const ref of main.matchAll(new RegExp(`\\b${m.symbol}!?\\.outputs\\.(\\w+)`, 'g'))) {
        expect(`${m.symbol}.outputs.${ref[1]}:${outputs.has(ref[1])}`).toBe(`${m.symbol}.outputs.${ref[1]}:true`);
      }
    }
  });
});

describe('role assignments', () => {
  const DOCUMENTED: Record<string, string> = {
    '3f88fce4-5892-4214-ae73-ba5294559913': 'FHIR Data Writer',
    '4633458b-17de-408a-b874-0445c86b69e6': 'Key Vault Secrets User',
    'b86a8fe4-44ce-4948-aee5-eccb2c155cd7': 'Key Vault Secrets Officer',
    'b7e6dc6d-f1e8-4753-8033-0f276bb0955b': 'Storage Blob Data Owner',
    '974c5e8b-45b9-4653-ba55-5f855dd0fb88': 'Storage Queue Data Contributor',
    '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3': 'Storage Table Data Contributor',
    '3913510d-42f4-4e42-8a64-420c390055eb': 'Monitoring Metrics Publisher',
  };
  const GUID = /'([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})'/g;

  it('uses only the documented built-in role definition ids', () => {
    const found = bicepFiles.flatMap((f) => [...sources[f].matchAll(GUID)].map((m) => m[1]));
    expect(found.length).toBeGreaterThan(0);
    for (const id of found) expect(`${id} ${DOCUMENTED[id] ?? 'UNKNOWN'}`).toBe(`${id} ${DOCUMENTED[id]}`);
  });

  it('assigns each of them: the role id variable feeds a roleAssignments resource', () => {
    const assigned = new Set<string>();
    for (const file of bicepFiles) {
      const src = sources[file];
      for (const v of src.matchAll(/^var\s+(\w+)\s*=\s*'([0-9a-f-]{36})'/gm)) {
        const [, name, id] = v;
        const usedInAssignment = new RegExp(`roleDefinitions'\\s*,\\s*${name}\\)`).test(src);
        const assignmentResource = /'Microsoft\.Authorization\/roleAssignments@/.test(src);
        if (usedInAssignment && assignmentResource) assigned.add(id);
      }
    }
    expect([...assigned].sort()).toEqual(Object.keys(DOCUMENTED).sort());
  });

  it('grants the data roles to the managed identity as a service principal', () => {
    for (const file of [
      'infra/modules/storage.bicep',
      'infra/modules/fhir.bicep',
      'infra/modules/fhir-role.bicep',
      'infra/modules/monitoring.bicep',
    ]) {
      expect(sources[file]).toMatch(/principalType: 'ServicePrincipal'/);
    }
  });
});

describe('Function App', () => {
  const src = sources['infra/modules/functionapp.bicep'];
  const code = codes['infra/modules/functionapp.bicep'];
  /** The app settings object: its top-level keys, and its raw text (stripping keeps offsets). */
  const settings = () => {
    const at = src.indexOf("resource appSettings 'Microsoft.Web/sites/config@");
    expect(at).toBeGreaterThan(-1);
    const resource = block(code, at);
    const props = block(code, code.indexOf('properties', resource.start));
    return { keys: topLevelKeys(props.body), raw: src.slice(props.start, props.end) };
  };
  const settingKeys = () => settings().keys;
  /** Raw value text of one app setting. */
  const settingValue = (key: string) => new RegExp(`^\\s*${key}\\s*:\\s*(.+)$`, 'm').exec(settings().raw)?.[1].trim();

  it('keeps offsets when stripping strings and comments (the parser relies on it)', () => {
    expect(code.length).toBe(src.length);
  });

  it('sets every setting that SETTINGS marks required', () => {
    const keys = settingKeys();
    const required = SETTINGS.filter((s) => s.required).map((s) => s.name);
    expect(required.length).toBeGreaterThan(0);
    for (const name of required) expect(keys).toContain(name);
  });

  it('sets only settings the connector knows, plus the host settings of identity-based storage and Entra ingestion', () => {
    const known = new Set([
      ...SETTINGS.map((s) => s.name),
      'AzureWebJobsStorage__credential',
      'AzureWebJobsStorage__clientId',
      'APPLICATIONINSIGHTS_AUTHENTICATION_STRING',
    ]);
    for (const key of settingKeys()) expect(`${key}:${known.has(key)}`).toBe(`${key}:true`);
    // Flex Consumption takes the runtime from functionAppConfig; the setting is rejected there.
    expect(settingKeys()).not.toContain('FUNCTIONS_WORKER_RUNTIME');
    expect(settingKeys()).not.toContain('AzureWebJobsStorage');
  });

  it('uses the managed identity everywhere', () => {
    expect(settingValue('AZURE_AUTH_MODE')).toBe("'managed-identity'");
    expect(settingValue('AZURE_CLIENT_ID')).toBe('identityClientId');
    expect(settingValue('AzureWebJobsStorage__accountName')).toBe('storageAccountName');
    expect(settingValue('AzureWebJobsStorage__credential')).toBe("'managedidentity'");
    expect(settingValue('AzureWebJobsStorage__clientId')).toBe('identityClientId');
    expect(settingValue('AHDS_FHIR_URL')).toBe('ahdsFhirUrl');
    expect(settingValue('SYNC_SCHEDULE')).toBe('syncSchedule');
    expect(settingValue('RECONCILE_SCHEDULE')).toBe('reconcileSchedule');
    expect(settingValue('APPLICATIONINSIGHTS_CONNECTION_STRING')).toBe('appInsightsConnectionString');
    expect(src).toMatch(/keyVaultReferenceIdentity:\s*identityId/);
    expect(src).toMatch(/type:\s*'UserAssigned'/);
  });

  it('reads the OpenEMR client id and private key as Key Vault references, never as values', () => {
    expect(settingValue('OPENEMR_PRIVATE_KEY')).toBe("'@Microsoft.KeyVault(SecretUri=${openemrPrivateKeySecretUri})'");
    expect(settingValue('OPENEMR_CLIENT_ID')).toBe("'@Microsoft.KeyVault(SecretUri=${openemrClientIdSecretUri})'");
    for (const s of SETTINGS.filter((x) => x.secret)) {
      const value = settingValue(s.name);
      if (value === undefined) continue;
      // a secret is a Key Vault reference or a value wired from another resource, never a literal
      expect(value.startsWith("'@Microsoft.KeyVault(") || /^[A-Za-z_]\w*$/.test(value)).toBe(true);
    }
    expect(Object.values(sources).join('\n')).not.toMatch(/-----BEGIN/);
  });

  it('runs on Flex Consumption (FC1) with Node 22, a deployment container and scale settings', () => {
    expect(src).toMatch(/name:\s*'FC1'/);
    expect(src).toMatch(/tier:\s*'FlexConsumption'/);
    expect(src).toMatch(/functionAppConfig:\s*\{/);
    expect(src).toMatch(/runtime:\s*\{\s*name:\s*'node'\s*version:\s*'22'\s*\}/);
    expect(src).toMatch(/type:\s*'blobContainer'/);
    expect(src).toMatch(/maximumInstanceCount:\s*maximumInstanceCount/);
    expect(src).toMatch(/instanceMemoryMB:\s*instanceMemoryMB/);
  });

  it('storage refuses shared keys; Key Vault uses RBAC; the FHIR service is R4', () => {
    expect(sources['infra/modules/storage.bicep']).toMatch(/allowSharedKeyAccess:\s*false/);
    expect(sources['infra/modules/keyvault.bicep']).toMatch(/enableRbacAuthorization:\s*true/);
    expect(sources['infra/modules/fhir.bicep']).toMatch(/kind:\s*'fhir-R4'/);
    expect(sources['infra/modules/fhir.bicep']).toMatch(/authenticationConfiguration:\s*\{[\s\S]*?audience:\s*fhirUrl/);
    expect(sources['infra/modules/monitoring.bicep']).toMatch(/WorkspaceResourceId:\s*logAnalytics\.id/);
  });

  it('is the azd service "api"', () => {
    expect(sources['infra/main.bicep']).toMatch(/'azd-service-name':\s*'api'/);
    const yaml = read('azure.yaml');
    expect(yaml).toMatch(/^services:\s*\n\s+api:\s*\n(\s+\w+:.*\n)*/m);
    expect(yaml).toMatch(/^\s+project:\s*\.\s*$/m);
    expect(yaml).toMatch(/^\s+language:\s*ts\s*$/m);
    expect(yaml).toMatch(/^\s+host:\s*function\s*$/m);
  });
});

describe('workbook and alerts', () => {
  const workbookText = read('infra/workbook/operators-workbook.json');
  const workbook = JSON.parse(workbookText);
  const alertsText = sources['infra/modules/alerts.bicep'];
  const known = new Set<string>([...Object.values(EVENTS), ...Object.values(METRICS)]);
  const referenced = (text: string) => [...text.matchAll(/FhirSync\.[A-Za-z]+/g)].map((m) => m[0]);
  const queries: string[] = workbook.items.filter((i: any) => i.type === 3).map((i: any) => i.content.query);

  it('is an Azure Monitor workbook (Notebook/1.0) of KQL items over Application Insights', () => {
    expect(workbook.version).toBe('Notebook/1.0');
    expect(queries.length).toBeGreaterThanOrEqual(10);
    for (const item of workbook.items.filter((i: any) => i.type === 3)) {
      expect(item.content.version).toBe('KqlItem/1.0');
      expect(item.content.resourceType).toBe('microsoft.insights/components');
      expect(typeof item.content.query).toBe('string');
    }
    const names = workbook.items.map((i: any) => i.name);
    expect(new Set(names).size).toBe(names.length);
  });

  it('queries the App Insights tables customEvents, customMetrics, dependencies and exceptions', () => {
    const all = queries.join('\n');
    for (const table of ['customEvents', 'customMetrics', 'dependencies', 'exceptions'])
      expect(all).toMatch(new RegExp(`^${table}\\b|\\b${table}\\s*\\n`, 'm'));
    expect(all).toContain('customDimensions.side');
  });

  it('shows every carried type: per-type panels split by the resourceType dimension and name no type (nor do the alerts)', () => {
    const perType: string[] = workbook.items
      .filter((i: any) => i.type === 3 && /\btype\b/i.test(String(i.content.title)))
      .map((i: any) => i.content.query);
    expect(perType.length).toBeGreaterThanOrEqual(4);
    for (const q of perType) expect(q).toMatch(/customDimensions\.resourceType/);
    // A fixed list would leave out the types the table gains: no query or alert names one.
    for (const text of [...queries, alertsText])
      for (const type of KNOWN_RESOURCE_TYPES) expect([type, new RegExp(`['"]${type}['"]`).test(text)]).toEqual([type, false]);
  });

  it('is deployed by Bicep from this file, bound to Application Insights', () => {
    const src = sources['infra/modules/workbook.bicep'];
    expect(src).toMatch(/loadTextContent\('\.\.\/workbook\/operators-workbook\.json'\)/);
    expect(src).toMatch(/'Microsoft\.Insights\/workbooks@/);
    expect(src).toMatch(/sourceId:\s*appInsightsId/);
    expect(workbookText).toContain('__APP_INSIGHTS_RESOURCE_ID__');
  });

  it('every FhirSync.* name the workbook and the alerts query is defined in names.ts', () => {
    const used = [...referenced(workbookText), ...referenced(alertsText)];
    expect(used.length).toBeGreaterThan(0);
    for (const name of used) expect(`${name}:${known.has(name)}`).toBe(`${name}:true`);
  });

  it('every event and metric in names.ts is queried by the workbook', () => {
    const used = new Set(referenced(queries.join('\n')));
    for (const name of known) expect(`${name}:${used.has(name)}`).toBe(`${name}:true`);
  });

  it('events are read from customEvents and metrics from customMetrics', () => {
    for (const q of [...queries, alertsText]) {
      for (const m of q.matchAll(/name\s*==\s*'(FhirSync\.[A-Za-z]+)'/g)) {
        const name = m[1];
        const table = Object.values(EVENTS).includes(name as never) ? 'customEvents' : 'customMetrics';
        const before = q.slice(0, m.index);
        const lastTable = [...before.matchAll(/\b(customEvents|customMetrics)\b/g)].pop()?.[1];
        expect(`${name} in ${lastTable}`).toBe(`${name} in ${table}`);
      }
    }
  });

  it('has scheduled query rules for failure rate, lag, auth failures and dead letters, with thresholds from parameters', () => {
    expect(alertsText).toMatch(/'Microsoft\.Insights\/scheduledQueryRules@/);
    const keys = [...alertsText.matchAll(/^\s*key:\s*'([a-z-]+)'/gm)].map((m) => m[1]);
    expect(keys).toEqual(expect.arrayContaining(['failure-rate', 'lag', 'auth-failures', 'dead-letters']));
    expect(alertsText).toMatch(/threshold:\s*lagThresholdSeconds/);
    expect(alertsText).toMatch(/threshold:\s*failureRatePercentThreshold/);
    expect(alertsText).toMatch(/threshold:\s*deadLetterThreshold/);
    expect(alertsText).toMatch(/'Microsoft\.Insights\/actionGroups@/);
    expect(alertsText).toMatch(/emailAddress:\s*alertEmail/);
    expect(alertsText).toContain(`'${METRICS.lagSeconds}'`);
    expect(alertsText).toContain(`'${METRICS.authFailures}'`);
    expect(alertsText).toContain(`'${EVENTS.deadLetter}'`);
    expect(alertsText).toContain(`'${METRICS.resourcesFailed}'`);
  });

  it('documents every alert in docs/operations.md', () => {
    const docs = read('docs/operations.md');
    for (const m of alertsText.matchAll(/^\s*displayName:\s*'FHIR sync: ([^'$]+)/gm)) {
      const words = m[1].trim().split(/\s+/).slice(0, 2).join(' ');
      expect(docs.toLowerCase()).toContain(words.toLowerCase());
    }
  });
});
