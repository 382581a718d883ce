import fs from 'node:fs';
import path from 'node:path';
import { LOG_DIR } from './log-capture';
import { scanForLeaks } from './privacy-scan';

/**
 * The last check of every suite run: nothing logged by any test (console output and the
 * connector's InvocationContext logs) holds a private key, a token or patient data.
 */
export default function globalTeardown(): void {
  if (!fs.existsSync(LOG_DIR)) return;
  const text = fs
    .readdirSync(LOG_DIR)
    .map((f) => fs.readFileSync(path.join(LOG_DIR, f), 'utf8'))
    .join('\n');
  const findings = scanForLeaks(text);
  if (findings.length > 0) {
    throw new Error(
      `Privacy scan of everything logged during the suite found ${findings.length} leak(s):\n${findings.slice(0, 20).join('\n')}`,
    );
  }
  console.log(`Privacy scan: ${text.split('\n').length} logged lines, no private key, token or patient data.`);
}
