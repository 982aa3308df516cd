import http from 'node:http';
import { z } from 'zod';
import { describeIssues } from '../../crds/api/validation.js';

/**
 * The Azure Instance Metadata Service, as the standalone agent reads it: only from inside the VM
 * (http://169.254.169.254, never proxied) and only with `Metadata: true`. Answers are checked with zod
 * where they enter, with errors that say which field was wrong.
 */

export const IMDS_ORIGIN = 'http://169.254.169.254';
export const IMDS_API_VERSION = '2021-02-01';

const ImdsIPv4Address = z.looseObject({ privateIpAddress: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/, { message: 'must be an IPv4 address' }) });
export const ImdsInterface = z.looseObject({
  ipv4: z.looseObject({
    ipAddress: z.array(ImdsIPv4Address).min(1, { message: 'the NIC lists no IPv4 address' }),
    subnet: z.array(z.looseObject({ address: z.string(), prefix: z.coerce.number().int().min(0).max(32) })).min(1, { message: 'the NIC lists no subnet' }),
  }),
  macAddress: z.string().regex(/^[0-9A-Fa-f]{12}$/, { message: 'must be 12 hex digits (IMDS writes MACs without separators)' }),
});
export type ImdsInterface = z.infer<typeof ImdsInterface>;

export const ImdsInstance = z.looseObject({
  compute: z.looseObject({
    name: z.string().min(1),
    resourceId: z.string().min(1),
    subscriptionId: z.string().min(1),
    resourceGroupName: z.string().min(1),
    vmId: z.string().optional(),
  }),
  network: z.looseObject({ interface: z.array(ImdsInterface).min(1, { message: 'the VM has no network interface' }) }),
});
export type ImdsInstance = z.infer<typeof ImdsInstance>;

export class ImdsError extends Error {}

/** GET an IMDS path (e.g. /metadata/instance) and parse it. */
export function imdsGet(path: string, opts: { origin?: string; timeoutMs?: number } = {}): Promise<unknown> {
  const url = new URL(path, opts.origin ?? IMDS_ORIGIN);
  if (!url.searchParams.has('api-version')) url.searchParams.set('api-version', IMDS_API_VERSION);
  return new Promise((resolve, reject) => {
    // No proxy, no keep-alive: IMDS refuses proxied requests, and a read every few seconds needs no pool.
    const req = http.get(url, { headers: { Metadata: 'true' }, agent: false, timeout: opts.timeoutMs ?? 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        if (res.statusCode !== 200) return reject(new ImdsError(`IMDS ${url.pathname}: HTTP ${res.statusCode}: ${text.slice(0, 300)}`));
        try {
          resolve(JSON.parse(text));
        } catch {
          reject(new ImdsError(`IMDS ${url.pathname}: the answer is not JSON: ${text.slice(0, 120)}`));
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new ImdsError(`IMDS ${url.origin} did not answer within ${opts.timeoutMs ?? 5000} ms (is this an Azure VM?)`)));
    req.on('error', (err) => reject(err instanceof ImdsError ? err : new ImdsError(`IMDS ${url.origin} cannot be reached (is this an Azure VM?): ${err.message}`)));
  });
}

/** The VM's compute facts and NICs. */
export async function readInstance(opts: { origin?: string; timeoutMs?: number } = {}): Promise<ImdsInstance> {
  const raw = await imdsGet('/metadata/instance', opts);
  const parsed = ImdsInstance.safeParse(raw);
  if (!parsed.success) throw new ImdsError(`IMDS /metadata/instance: unexpected answer: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

/** IMDS writes 000D3AF806EC; the datapath wants 00:0d:3a:f8:06:ec. */
export function macFromImds(mac: string): string {
  return mac.toLowerCase().replace(/(..)(?!$)/g, '$1:');
}
