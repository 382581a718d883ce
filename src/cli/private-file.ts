import fs from 'node:fs';

/**
 * Writes a secret (a private key) readable by its owner only: mode 0600 even when the file already
 * existed with a wider mode (writeFileSync's mode applies only to a new file), and never through a
 * symbolic link planted where the key goes.
 */
export function writePrivateFile(file: string, content: string): void {
  try {
    if (fs.lstatSync(file).isSymbolicLink()) fs.unlinkSync(file);
  } catch {
    // no such file yet
  }
  fs.writeFileSync(file, content, { mode: 0o600 });
  fs.chmodSync(file, 0o600);
}
