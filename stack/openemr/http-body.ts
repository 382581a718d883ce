import type { IncomingMessage } from 'node:http';
import { readBody } from '../http-body';

export class BadRequest extends Error {}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const text = await readBody(req);
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new BadRequest('body is not JSON');
  }
}
