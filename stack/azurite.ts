import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

export interface AzuriteHandle {
  connectionString: string;
  blobPort: number;
  queuePort: number;
  tablePort: number;
  close(): Promise<void>;
}

/** The well-known development account Azurite serves (public, documented by Microsoft). */
const ACCOUNT = 'devstoreaccount1';
const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/**
 * Azurite in memory on free ports, as a child process (its package main is the VS Code extension,
 * so it cannot be required). Ready when it says its services are listening.
 */
export async function startAzurite(): Promise<AzuriteHandle> {
  const entry = path.join(path.dirname(require.resolve('azurite/package.json')), 'dist', 'src', 'azurite.js');
  const child: ChildProcess = spawn(
    process.execPath,
    [
      entry,
      '--inMemoryPersistence',
      '--silent',
      '--loose',
      '--skipApiVersionCheck',
      '--disableTelemetry',
      // Port 0: the system picks free ports and Azurite says which, so no other process can take
      // a port between choosing and binding it.
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      '0',
      '--queueHost',
      '127.0.0.1',
      '--queuePort',
      '0',
      '--tableHost',
      '127.0.0.1',
      '--tablePort',
      '0',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const ports = await new Promise<Record<'Blob' | 'Queue' | 'Table', number>>((resolve, reject) => {
    let output = '';
    const ready: Partial<Record<'Blob' | 'Queue' | 'Table', number>> = {};
    const fail = (error: Error): void => {
      clearTimeout(timer);
      child.kill('SIGKILL'); // never leave an Azurite behind that nobody can close
      reject(error);
    };
    const timer = setTimeout(() => fail(new Error(`Azurite did not start within 30 s: ${output.slice(-500)}`)), 30_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      for (const svc of ['Blob', 'Queue', 'Table'] as const) {
        const m = new RegExp(`${svc} service is successfully listening at http://[^:]+:(\\d+)`, 'i').exec(output);
        if (m) ready[svc] = Number(m[1]);
      }
      if (ready.Blob && ready.Queue && ready.Table) {
        clearTimeout(timer);
        resolve(ready as Record<'Blob' | 'Queue' | 'Table', number>);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => fail(new Error(`Azurite exited with code ${code}: ${output.slice(-500)}`)));
  });
  const { Blob: blobPort, Queue: queuePort, Table: tablePort } = ports;
  const connectionString = [
    'DefaultEndpointsProtocol=http',
    `AccountName=${ACCOUNT}`,
    `AccountKey=${KEY}`,
    `BlobEndpoint=http://127.0.0.1:${blobPort}/${ACCOUNT}`,
    `QueueEndpoint=http://127.0.0.1:${queuePort}/${ACCOUNT}`,
    `TableEndpoint=http://127.0.0.1:${tablePort}/${ACCOUNT}`,
  ].join(';');
  return {
    connectionString,
    blobPort,
    queuePort,
    tablePort,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
