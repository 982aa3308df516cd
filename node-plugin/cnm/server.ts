import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { CnmDriver } from './driver.js';
import { DriverError } from './pool.js';
import { listenPrivateSocket } from '../private-socket.js';
import { isMethod, parseRequest, PLUGIN_CONTENT_TYPE, ProtocolError, type ErrorResponse } from './protocol.js';

/**
 * HTTP plumbing of the plugin protocol: POST /<Interface>.<Method> with a JSON body, JSON back.
 * 400 + {"Err"} for a body that does not parse, 404 (libnetwork's "not implemented") for unknown methods,
 * 200 + {"Err"} when the driver understood the call and it failed (see failure() for the field names).
 */

const MAX_BODY = 1 << 20;

export function createPluginHttpServer(driver: CnmDriver, log: Logger): Server {
  return createServer((req, res) => {
    void serve(driver, log, req, res);
  });
}

/**
 * libnetwork reads a failed network-driver call's message from "Err" and a failed IPAM call's from "Error"
 * (ipams/remote/api.Response); both are sent, Go ignores the field it does not know.
 */
function failure(message: string): ErrorResponse {
  return { Err: message, Error: message };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': PLUGIN_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** The body, or undefined when it is too large (the rest is drained, so the client still gets the answer). */
function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) tooLarge = true;
      if (!tooLarge) chunks.push(chunk);
    });
    req.on('end', () => resolve(tooLarge ? undefined : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function serve(driver: CnmDriver, log: Logger, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const method = (req.url ?? '').split('?')[0]!.replace(/^\/+/, '');
  if (req.method !== 'POST') {
    res.setHeader('Allow', 'POST');
    return send(res, 405, failure(`${req.method} ${req.url}: the plugin protocol uses POST`));
  }
  if (!isMethod(method)) {
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('404 page not found\n');
    log.debug({ method }, 'unknown plugin method');
    return;
  }
  const started = process.hrtime.bigint();
  try {
    const raw = await readBody(req);
    if (raw === undefined) return send(res, 413, failure(`${method}: request body larger than ${MAX_BODY} bytes`));
    const body = parseRequest(method, raw);
    const answer = await driver.handle(method, body);
    log.debug({ method, request: body, response: answer, ms: msSince(started) }, 'plugin call');
    send(res, 200, answer);
  } catch (err) {
    if (err instanceof ProtocolError) {
      log.warn({ method, err: err.message }, 'rejected a malformed plugin request');
      return send(res, 400, failure(`azure-vnet: ${err.message}`));
    }
    if (err instanceof DriverError) {
      log.warn({ method, err: err.message, ms: msSince(started) }, 'plugin call failed');
      return send(res, 200, failure(err.message));
    }
    log.error({ method, err, ms: msSince(started) }, 'plugin call failed unexpectedly');
    send(res, 200, failure(`azure-vnet: ${method} failed: ${(err as Error).message ?? String(err)}`));
  }
}

function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/**
 * Listens on a unix socket, replacing a stale socket file from a previous run; the socket is root-only
 * (dockerd runs as root). Resolves once listening.
 */
export async function listenOnSocket(server: Server, socketPath: string): Promise<void> {
  await listenPrivateSocket(server, socketPath);
}
