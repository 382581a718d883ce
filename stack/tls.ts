import fs from 'node:fs';
import path from 'node:path';

/** Key and certificate made by scripts/with-local-ca.js, which also made Node trust them. */
export function localTls(): { key: Buffer; cert: Buffer; certFile: string } {
  const dir = process.env.LOCAL_STACK_TLS_DIR;
  if (!dir || !process.env.NODE_EXTRA_CA_CERTS) {
    throw new Error(
      'The local stack needs a trusted TLS certificate: run through scripts/with-local-ca.js (npm test, npm run stack, npm run demo do).',
    );
  }
  const certFile = path.join(dir, 'cert.pem');
  return { key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(certFile), certFile };
}
