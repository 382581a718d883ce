#!/usr/bin/env node
// Runs a command with a locally trusted TLS certificate for 127.0.0.1/localhost.
// Node reads NODE_EXTRA_CA_CERTS only at start-up, so the certificate must exist before the child
// process starts: the Entra stand-in (@azure/identity insists on https) and the Application Insights
// capture endpoint (the exporter forces https) both serve it.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');

const dir = path.resolve(process.env.LOCAL_STACK_TLS_DIR || path.join(__dirname, '..', '.stack', 'tls'));
const certFile = path.join(dir, 'cert.pem');
const keyFile = path.join(dir, 'key.pem');

async function ensureCertificate() {
  if (fs.existsSync(certFile) && fs.existsSync(keyFile)) {
    const { X509Certificate } = require('node:crypto');
    const cert = new X509Certificate(fs.readFileSync(certFile));
    if (Date.parse(cert.validTo) - Date.now() > 24 * 3600 * 1000) return;
  }
  const selfsigned = require('selfsigned');
  const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
    days: 30,
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 7, ip: '127.0.0.1' },
          { type: 2, value: 'localhost' },
        ],
      },
    ],
  });
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(keyFile, pems.private, { mode: 0o600 });
  fs.writeFileSync(certFile, pems.cert);
}

async function main() {
  const [cmd, ...args] = process.argv.slice(2);
  if (!cmd) {
    console.error('usage: with-local-ca.js <command> [args...]');
    process.exit(2);
  }
  await ensureCertificate();
  const env = { ...process.env, NODE_EXTRA_CA_CERTS: certFile, LOCAL_STACK_TLS_DIR: dir };
  const child = spawn(cmd, args, { stdio: 'inherit', env, shell: process.platform === 'win32' });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

main().catch((err) => {
  console.error(`Could not prepare the local TLS certificate: ${err.message}`);
  process.exit(1);
});
