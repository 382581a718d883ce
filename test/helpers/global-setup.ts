import fs from 'node:fs';
import { LOG_DIR } from './log-capture';

export default function globalSetup(): void {
  fs.rmSync(LOG_DIR, { recursive: true, force: true });
  fs.mkdirSync(LOG_DIR, { recursive: true });
}
