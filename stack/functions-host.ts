import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {
  app,
  HttpRequest,
  HttpResponse,
  InvocationContext,
  type HttpFunctionOptions,
  type HttpHandler,
  type HttpResponseInit,
} from '@azure/functions';
import { randomUUID } from 'node:crypto';
import { readBody } from './http-body';
import { matchRoute } from '../functions/shared/routes';
import { operationOutcome, type IssueCode } from '../src/fhir/operation-outcome';
import { startQueueWorkers } from './queue-worker';

/**
 * A small stand-in for the Functions host, for the local stack: it loads the real function files,
 * captures what they register with app.http and app.storageQueue (the package's own registration
 * calls are skipped outside the host), serves the HTTP handlers with real HttpRequest and
 * InvocationContext objects and feeds the queue handlers from Azurite. Every error it answers
 * itself is an OperationOutcome. Timers do not run here (the CLI runs the same work on demand).
 * Azure Functions Core Tools is not needed.
 */
export interface RegisteredHttpFunction {
  name: string;
  methods: string[];
  route: string;
  handler: HttpHandler;
}

export interface RegisteredOther {
  name: string;
  kind: 'timer' | 'storageQueue';
  options: Record<string, unknown>;
}

export interface Registrations {
  http: RegisteredHttpFunction[];
  other: RegisteredOther[];
}

let captured: Registrations | undefined;

/** Loads every function file next to this build's functions/ folder and returns what they registered. */
export function loadFunctionRegistrations(functionsDir = path.resolve(__dirname, '..', 'functions')): Registrations {
  if (captured) return captured;
  const regs: Registrations = { http: [], other: [] };
  const original = { http: app.http, timer: app.timer, storageQueue: app.storageQueue };
  const mutableApp = app as unknown as Record<string, unknown>;
  mutableApp.http = (name: string, options: HttpFunctionOptions) => {
    regs.http.push({
      name,
      methods: (options.methods ?? ['GET', 'POST']).map(String),
      route: options.route ?? name,
      handler: options.handler,
    });
  };
  mutableApp.timer = (name: string, options: Record<string, unknown>) => regs.other.push({ name, kind: 'timer', options });
  mutableApp.storageQueue = (name: string, options: Record<string, unknown>) => regs.other.push({ name, kind: 'storageQueue', options });
  try {
    const ext = __filename.endsWith('.ts') ? '.ts' : '.js';
    for (const file of fs.readdirSync(functionsDir).sort()) {
      // Loading each function file runs its app.http/app.timer registrations, which this host captures.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      if (file.endsWith(ext) && !file.endsWith('.d.ts')) require(path.join(functionsDir, file));
    }
  } finally {
    Object.assign(mutableApp, original);
  }
  captured = regs;
  return regs;
}

/** Azure Functions' front end refuses longer URLs (4 KB) and bodies over 100 MB; no endpoint here takes a body at all. */
export const MAX_URL_BYTES = 4096;
export const MAX_BODY_BYTES = 1024 * 1024;

function outcomeWire(
  status: number,
  code: IssueCode,
  diagnostics: string,
  headers: Record<string, string> = {},
): { status: number; headers: Record<string, string>; body: string } {
  return {
    status,
    headers: { 'content-type': 'application/fhir+json', ...headers },
    body: JSON.stringify(operationOutcome(code, diagnostics), null, 2),
  };
}

/** True when a raw path holds a "." or ".." segment (also percent-encoded), which would otherwise be resolved away. */
function hasDotSegment(rawPath: string): boolean {
  return rawPath.split('/').some((segment) => {
    const s = segment.replace(/%2e/gi, '.');
    return s === '.' || s === '..';
  });
}

/** Serves the captured HTTP functions under /api on 127.0.0.1, and runs the queue-triggered ones when storage is set. */
export async function startFunctionsHost(
  options: { port?: number; log?: (line: string) => void; queues?: boolean } = {},
): Promise<{ url: string; close(): Promise<void> }> {
  const { http: all, other } = loadFunctionRegistrations();
  // Literal routes before the catch-all, as the host orders them.
  const functions = [...all.filter((f) => !f.route.includes('{*')), ...all.filter((f) => f.route.includes('{*'))];
  const serve = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const answer = await route(req);
    res.writeHead(answer.status, answer.headers);
    res.end(answer.body);
  };
  const route = async (req: http.IncomingMessage): Promise<{ status: number; headers: Record<string, string>; body: string }> => {
    const raw = req.url ?? '/';
    if (Buffer.byteLength(raw) > MAX_URL_BYTES) return outcomeWire(414, 'too-long', `The URL is longer than ${MAX_URL_BYTES} bytes.`);
    const rawPath = raw.split('?')[0]!;
    if (hasDotSegment(rawPath)) return outcomeWire(400, 'invalid', 'The path holds a "." or ".." segment; ids never do.');
    if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) {
      req.resume();
      return outcomeWire(413, 'too-costly', `The request body is larger than ${MAX_BODY_BYTES} bytes; no endpoint takes a body.`);
    }
    let body: string;
    try {
      body = await readBody(req, MAX_BODY_BYTES);
    } catch {
      req.resume();
      return outcomeWire(413, 'too-costly', `The request body is larger than ${MAX_BODY_BYTES} bytes; no endpoint takes a body.`);
    }
    const url = new URL(raw, `http://${req.headers.host ?? '127.0.0.1'}`);
    if (!/^\/api(\/|$)/.test(rawPath)) return outcomeWire(404, 'not-found', 'No endpoint serves this path (the endpoints are under /api).');
    const pathname = rawPath.replace(/^\/api\/?/, '');
    for (const fn of functions) {
      const params = matchRoute(fn.route, pathname);
      if (!params || !fn.methods.includes(req.method ?? 'GET')) continue;
      return invokeHttpHandler(fn.handler, {
        functionName: fn.name,
        method: req.method ?? 'GET',
        url: url.toString(),
        headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)])),
        params,
        body: body || undefined,
        log: (line) => options.log?.(`[${fn.name}] ${line}`),
      });
    }
    return outcomeWire(404, 'not-found', 'No endpoint serves this path.');
  };
  // One failing request must not take the host (and the whole local stack) down.
  const server = http.createServer({ maxHeaderSize: 64 * 1024 }, (req, res) => {
    serve(req, res).catch((error: unknown) => {
      if (res.headersSent) return void res.destroy();
      const answer = outcomeWire(
        500,
        'exception',
        `The local host failed to serve the request (${error instanceof Error ? error.name : 'Error'}).`,
      );
      res.writeHead(answer.status, answer.headers);
      res.end(answer.body);
    });
  });
  // Requests node itself refuses (headers too large, malformed) get an OperationOutcome too.
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return void socket.destroy();
    const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
    const answer = tooLarge
      ? outcomeWire(431, 'too-long', 'The request headers are too large.')
      : outcomeWire(400, 'invalid', 'The request is not valid HTTP.');
    socket.end(
      `HTTP/1.1 ${answer.status} ${http.STATUS_CODES[answer.status]}\r\ncontent-type: application/fhir+json\r\ncontent-length: ${Buffer.byteLength(answer.body)}\r\nconnection: close\r\n\r\n${answer.body}`,
    );
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const storage = process.env.AzureWebJobsStorage?.trim();
  const queues =
    storage && options.queues !== false
      ? startQueueWorkers(
          other.filter((o) => o.kind === 'storageQueue'),
          { connectionString: storage, log: options.log },
        )
      : undefined;
  return {
    url: `http://127.0.0.1:${port}/api`,
    close: async () => {
      await queues?.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A handler's answer as status, headers and body text, whichever form the handler returned. */
export async function toWire(
  answer: HttpResponseInit | HttpResponse,
): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  if (answer instanceof HttpResponse) {
    return { status: answer.status, headers: Object.fromEntries(answer.headers.entries()), body: await answer.text() };
  }
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries((answer.headers ?? {}) as Record<string, string>)) headers[k.toLowerCase()] = String(v);
  let body = typeof answer.body === 'string' ? answer.body : '';
  if (answer.jsonBody !== undefined) {
    body = JSON.stringify(answer.jsonBody, null, 2);
    headers['content-type'] ??= 'application/json';
  }
  return { status: answer.status ?? 200, headers, body };
}

export interface Invocation {
  functionName: string;
  method: string;
  /** Absolute URL; its query string becomes the request's query. */
  url: string;
  headers?: Record<string, string>;
  params?: Record<string, string>;
  body?: string;
  invocationId?: string;
  log?: (line: string) => void;
}

/**
 * Calls an HTTP handler as the Functions host would: a real HttpRequest and InvocationContext in,
 * the answer as status, headers and text out. The local host, the demo and the tests all use it.
 */
export async function invokeHttpHandler(
  handler: HttpHandler,
  call: Invocation,
): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const request = new HttpRequest({
    method: call.method,
    url: call.url,
    headers: call.headers ?? {},
    query: Object.fromEntries(new URL(call.url).searchParams),
    params: call.params ?? {},
    ...(call.body !== undefined ? { body: { string: call.body } } : {}),
  });
  const context = new InvocationContext({
    invocationId: call.invocationId ?? randomUUID(),
    functionName: call.functionName,
    logHandler: (level, ...args) => call.log?.(`${level}: ${args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}`),
  });
  return toWire(await handler(request, context));
}
