import fs from 'node:fs';
import { LOG_DIR } from './log-capture';
import { hapiTierLine } from '../../stack/hapi/tier';

export default function globalSetup(): void {
  fs.rmSync(LOG_DIR, { recursive: true, force: true });
  fs.mkdirSync(LOG_DIR, { recursive: true });
  console.log(`\n${hapiTierLine()}`);
}
