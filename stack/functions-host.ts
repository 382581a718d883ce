import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { app, HttpRequest, HttpResponse, InvocationContext, type HttpFunctionOptions, type HttpHandler, type HttpResponseInit } from '@azure/functions';
import { randomUUID } from 'node:crypto';
import { readBody } from './http-body';

/**
 * A small stand-in for the Functions host's HTTP routing, for the local stack: it loads the real
 * function files, captures what they register with app.http (the package's own registration
 * calls are skipped outside the host), and serves those handlers with real HttpRequest and
 * InvocationContext objects. Azure Functions Core Tools is not needed.
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
    regs.http.push({ name, methods: (options.methods ?? ['GET', 'POST']).map(String), route: options.route ?? name, handler: options.handler });
  };
  mutableApp.timer = (name: string, options: Record<string, unknown>) => regs.other.push({ name, kind: 'timer', options });
  mutableApp.storageQueue = (name: string, options: Record<string, unknown>) => regs.other.push({ name, kind: 'storageQueue', options });
  try {
    const ext = __filename.endsWith('.ts') ? '.ts' : '.js';
    for (const file of fs.readdirSync(functionsDir).sort()) {
      if (file.endsWith(ext) && !file.endsWith('.d.ts')) require(path.join(functionsDir, file));
    }
  } finally {
    Object.assign(mutableApp, original);
  }
  captured = regs;
  return regs;
}

function matchRoute(route: string, pathname: string): Record<string, string> | undefined {
  const routeParts = route.split('/').filter(Boolean);
  const pathParts = pathname.split('/').filter(Boolean);
  if (routeParts.length !== pathParts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < routeParts.length; i++) {
    const r = routeParts[i]!;
    let p: string;
    try {
      p = decodeURIComponent(pathParts[i]!);
    } catch {
      return undefined; // a malformed %-escape matches no route
    }
    const m = /^\{(\w+)(?::[^}]*)?\??\}$/.exec(r);
    if (m) params[m[1]!] = p;
    else if (r.toLowerCase() !== p.toLowerCase()) return undefined;
  }
  return params;
}

/** Serves the captured HTTP functions under /api on 127.0.0.1. */
export async function startFunctionsHost(options: { port?: number; log?: (line: string) => void } = {}): Promise<{ url: string; close(): Promise<void> }> {
  const { http: functions } = loadFunctionRegistrations();
  const serve = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const body = await readBody(req);
    const pathname = url.pathname.replace(/^\/api/, '');
    for (const fn of functions) {
      const params = matchRoute(fn.route, pathname);
      if (!params || !fn.methods.includes(req.method ?? 'GET')) continue;
      const answer = await invokeHttpHandler(fn.handler, {
        functionName: fn.name,
        method: req.method ?? 'GET',
        url: url.toString(),
        headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)])),
        params,
        body: body || undefined,
        log: (line) => options.log?.(`[${fn.name}] ${line}`),
      });
      res.writeHead(answer.status, answer.headers);
      res.end(answer.body);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: `No function serves ${req.method} ${url.pathname}` }));
  };
  // One failing request must not take the host (and the whole local stack) down.
  const server = http.createServer((req, res) => {
    serve(req, res).catch((error: unknown) => {
      if (res.headersSent) return void res.destroy();
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: `The local host failed to serve the request (${error instanceof Error ? error.name : 'Error'}).` }));
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/api`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A handler's answer as status, headers and body text, whichever form the handler returned. */
export async function toWire(answer: HttpResponseInit | HttpResponse): Promise<{ status: number; headers: Record<string, string>; body: string }> {
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
export async function invokeHttpHandler(handler: HttpHandler, call: Invocation): Promise<{ status: number; headers: Record<string, string>; body: string }> {
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
