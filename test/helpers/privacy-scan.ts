import fs from 'node:fs';
import path from 'node:path';
import { defaultDataDir } from '../../stack/openemr/repo-paths';

/**
 * Strings that must never appear in logs, telemetry, errors or dead letters: every name, birth
 * date, SSN and street line of the sample patients, plus the shapes of secrets.
 */
let forbidden: string[] | undefined;
export function forbiddenPatientStrings(): string[] {
  if (forbidden) return forbidden;
  const file = path.join(defaultDataDir(), 'Patient.ndjson');
  const out = new Set<string>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const p = JSON.parse(line) as Record<string, any>;
    for (const n of p.name ?? []) for (const part of [n.family, ...(n.given ?? [])]) if (part && part.length > 3) out.add(part);
    if (p.birthDate) out.add(p.birthDate);
    for (const id of p.identifier ?? []) if (id.system === 'http://hl7.org/fhir/sid/us-ssn') out.add(id.value);
    for (const a of p.address ?? []) for (const l of a.line ?? []) out.add(l);
  }
  return (forbidden = [...out]);
}

export const SECRET_PATTERNS: Array<[string, RegExp]> = [
  ['PEM private key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/],
  ['JWT', /eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/],
  ['bearer token', /Bearer\s+[A-Za-z0-9._~+/-]{20,}/],
  ['SSN', /\b\d{3}-\d{2}-\d{4}\b/],
];

/** Every finding as "what: excerpt"; empty when the text is clean. */
export function scanForLeaks(text: string, extra: string[] = []): string[] {
  const findings: string[] = [];
  for (const [what, re] of SECRET_PATTERNS) {
    const m = re.exec(text);
    if (m) findings.push(`${what}: ${text.slice(Math.max(0, m.index - 40), m.index + 20).replace(/\s+/g, ' ')}`);
  }
  for (const s of [...forbiddenPatientStrings(), ...extra]) {
    const i = text.indexOf(s);
    if (i >= 0) findings.push(`patient data or secret "${s.slice(0, 12)}…": ${text.slice(Math.max(0, i - 40), i).replace(/\s+/g, ' ')}`);
  }
  return findings;
}
