import fs from 'node:fs';
import path from 'node:path';

/** Where every line logged during the suite is kept for the privacy scan in global teardown. */
export const LOG_DIR = path.resolve(__dirname, '..', '..', '.stack', 'test-logs');

export function captureLogLine(line: string): void {
  fs.mkdirSync(LOG_DIR, { recursive: true });
  fs.appendFileSync(path.join(LOG_DIR, `worker-${process.env.JEST_WORKER_ID ?? '0'}-${process.pid}.log`), `${line}\n`);
}
