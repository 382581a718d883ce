import type { IncomingMessage } from 'node:http';

/** Reads the whole request body as UTF-8 (the stand-ins' bodies are small except bulk uploads). */
export async function readBody(req: IncomingMessage, limitBytes = 64 * 1024 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > limitBytes) throw new Error('request body too large');
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}
