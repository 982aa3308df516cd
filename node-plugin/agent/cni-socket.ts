import { promises as fs } from 'node:fs';
import net from 'node:net';
import type { CniResponse } from '../cni/protocol.js';
import { listenPrivateSocket } from '../private-socket.js';

/**
 * The unix socket the per-pod executable (node-plugin/cni/forwarder.c) talks to. One connection per
 * invocation:
 *   request:  "PODVNET-CNI/1\n" { "KEY=VALUE" NUL }* NUL <stdin bytes>, then the client half-closes
 *   response: "<exit code>\n" <stdout bytes>, then the agent closes
 */

export const WIRE_MAGIC = 'PODVNET-CNI/1\n';
const MAX_REQUEST = 8 * 1024 * 1024;

export interface WireRequest {
  env: Record<string, string>;
  stdin: string;
}

/** Decodes a request frame; throws on anything malformed. */
export function decodeRequest(buf: Buffer): WireRequest {
  if (buf.subarray(0, WIRE_MAGIC.length).toString('latin1') !== WIRE_MAGIC) throw new Error('not a PODVNET-CNI/1 request');
  let pos = WIRE_MAGIC.length;
  const env: Record<string, string> = {};
  for (;;) {
    const nul = buf.indexOf(0, pos);
    if (nul < 0) throw new Error('truncated request: environment not terminated');
    if (nul === pos) {
      pos++;
      break;
    }
    const entry = buf.subarray(pos, nul).toString('utf8');
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
    pos = nul + 1;
  }
  return { env, stdin: buf.subarray(pos).toString('utf8') };
}

/** Encodes a request frame (the forwarder does this in C; tests and the benchmark do it here). */
export function encodeRequest(req: WireRequest): Buffer {
  const parts: Buffer[] = [Buffer.from(WIRE_MAGIC, 'latin1')];
  for (const [k, v] of Object.entries(req.env)) parts.push(Buffer.from(`${k}=${v}\0`, 'utf8'));
  parts.push(Buffer.from([0]), Buffer.from(req.stdin, 'utf8'));
  return Buffer.concat(parts);
}

export function encodeResponse(res: CniResponse): Buffer {
  return Buffer.from(`${res.exitCode}\n${res.stdout}`, 'utf8');
}

export type RequestHandler = (env: Record<string, string>, stdin: string) => Promise<CniResponse>;

export interface CniSocketServer {
  /** Stops accepting, waits for requests in flight, removes the socket file. */
  close(): Promise<void>;
  inFlight(): number;
}

export async function listenCniSocket(socketPath: string, handler: RequestHandler): Promise<CniSocketServer> {
  const pending = new Set<Promise<void>>();

  const server = net.createServer({ allowHalfOpen: true }, (conn) => {
    const chunks: Buffer[] = [];
    let size = 0;
    conn.on('error', () => conn.destroy());
    conn.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_REQUEST) {
        conn.destroy();
        return;
      }
      chunks.push(c);
    });
    conn.on('end', () => {
      const work = (async () => {
        let res: CniResponse;
        try {
          const req = decodeRequest(Buffer.concat(chunks));
          res = await handler(req.env, req.stdin);
        } catch (err) {
          res = { exitCode: 1, stdout: JSON.stringify({ cniVersion: '1.1.0', code: 6, msg: `bad request from the CNI executable: ${(err as Error).message}` }) };
        }
        if (!conn.destroyed) conn.end(encodeResponse(res));
      })();
      pending.add(work);
      void work.finally(() => pending.delete(work));
    });
  });
  await listenPrivateSocket(server, socketPath);

  return {
    inFlight: () => pending.size,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // server.close waits for open connections; they finish once their request is answered.
      });
      await Promise.allSettled([...pending]);
      await fs.unlink(socketPath).catch(() => undefined);
    },
  };
}

/** Sends one request over the socket (what the C forwarder does), for tests and benchmarks. */
export function callCniSocket(socketPath: string, req: WireRequest): Promise<CniResponse> {
  return new Promise((resolve, reject) => {
    const conn = net.createConnection({ path: socketPath, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    conn.on('connect', () => conn.end(encodeRequest(req)));
    conn.on('data', (c: Buffer) => chunks.push(c));
    conn.on('error', reject);
    conn.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const nl = text.indexOf('\n');
      if (nl < 0) return reject(new Error('agent hung up without an answer'));
      resolve({ exitCode: Number(text.slice(0, nl)), stdout: text.slice(nl + 1) });
    });
  });
}
