import fs from 'node:fs';
import { LOG_DIR } from '../helpers/log-capture';
import { buildHapiServer, javaToolchain } from '../../stack/hapi';

/** The HAPI tier needs Java and Maven: without them it stops here, saying so, instead of timing out. */
export default async function globalSetup(): Promise<void> {
  fs.rmSync(LOG_DIR, { recursive: true, force: true });
  fs.mkdirSync(LOG_DIR, { recursive: true });
  const java = javaToolchain();
  if (!java.ok) throw new Error(`npm run test:hapi needs Java 17+ and Maven on PATH: ${java.summary}`);
  const build = await buildHapiServer({ log: (line) => console.log(line) });
  console.log(
    `\nHAPI FHIR server (stack/hapi): ${java.summary}; build ${build.how}${build.how === 'cached' ? '' : ` in ${(build.durationMs / 1000).toFixed(1)} s`}`,
  );
}
