#!/usr/bin/env node
// Compiles the project (tsc) only when dist/ is missing or older than a source file, so `npm run
// sync`, `stack`, `demo` and the other scripts start at once when nothing changed instead of
// compiling for half a minute every time.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const stamp = path.join(root, 'dist', '.build-stamp');
const SOURCES = ['src', 'functions', 'stack', 'scripts', 'tsconfig.json', 'package.json', 'package-lock.json'];

function newest(entry) {
  let stat;
  try {
    stat = fs.statSync(entry);
  } catch {
    return 0;
  }
  if (!stat.isDirectory()) return /\.(ts|json)$/.test(entry) ? stat.mtimeMs : 0;
  let max = 0;
  for (const name of fs.readdirSync(entry)) if (name !== 'node_modules') max = Math.max(max, newest(path.join(entry, name)));
  return max;
}

function builtAt() {
  try {
    return fs.statSync(stamp).mtimeMs;
  } catch {
    return -1;
  }
}

const sourcesAt = Math.max(...SOURCES.map((s) => newest(path.join(root, s))));
if (builtAt() >= sourcesAt) process.exit(0);
process.stderr.write('Compiling (sources changed since the last build)...\n');
const tsc = require.resolve('typescript/bin/tsc');
const result = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });
if (result.status !== 0) process.exit(result.status ?? 1);
fs.mkdirSync(path.dirname(stamp), { recursive: true });
fs.writeFileSync(stamp, `${new Date().toISOString()}\n`);
