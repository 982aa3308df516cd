// The Azure Instance Metadata Service as one VM sees it: the VM's compute facts, its NICs' addresses in
// IMDS's network format, and managed-identity tokens. Pure: the emulator finds the VM and issues tokens.
import { formatIPv4, parseCidr } from './address-pool.js';
import type { Nic } from './state.js';

export interface ImdsReply { status: number; body: unknown }

/** What IMDS knows about the VM it runs on. */
export interface ImdsMachine {
  resourceId: string;
  name: string;
  computerName: string;
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  vmId: string;
  vmSize: string;
  nics: readonly Nic[];
}

const NEWEST_VERSIONS = ['2023-07-01', '2021-12-13', '2021-11-15'];

/** IMDS's network view: per NIC, the primary address first, then the secondary ones; the primary's subnet. */
export function imdsNetwork(nics: readonly Nic[]): { interface: unknown[] } {
  return {
    interface: nics.map((nic) => {
      const primary = nic.ipConfigs.find((c) => c.primary) ?? nic.ipConfigs[0];
      const ordered = primary ? [primary, ...nic.ipConfigs.filter((c) => c !== primary)] : [];
      const cidr = primary ? parseCidr(primary.subnet.addressPrefix) : undefined;
      return {
        ipv4: {
          ipAddress: ordered.map((c) => ({ privateIpAddress: c.privateIPAddress, publicIpAddress: '' })),
          subnet: cidr ? [{ address: formatIPv4(cidr.base), prefix: String(cidr.prefixLength) }] : [],
        },
        ipv6: { ipAddress: [] },
        macAddress: nic.macAddress.replace(/[-:]/g, '').toUpperCase(),
      };
    }),
  };
}

export function imdsCompute(m: ImdsMachine): Record<string, unknown> {
  return {
    azEnvironment: 'AzurePublicCloud',
    location: m.location,
    name: m.name,
    osProfile: { computerName: m.computerName },
    osType: 'Linux',
    resourceGroupName: m.resourceGroup,
    resourceId: m.resourceId,
    subscriptionId: m.subscriptionId,
    vmId: m.vmId,
    vmSize: m.vmSize,
  };
}

/** Walks /metadata/instance/<a>/<b>/<index> down the document, as IMDS does. */
function walk(doc: unknown, path: readonly string[]): unknown {
  let at = doc;
  for (const seg of path) {
    if (Array.isArray(at) && /^\d+$/.test(seg)) at = at[Number(seg)];
    else if (at && typeof at === 'object' && !Array.isArray(at)) at = (at as Record<string, unknown>)[seg];
    else return undefined;
    if (at === undefined) return undefined;
  }
  return at;
}

export interface ImdsRequest {
  method: string;
  url: URL;
  headers: Record<string, string | string[] | undefined>;
}

/**
 * One IMDS request. Like Azure: the `Metadata: true` header is required (400 without it, the probe
 * @azure/identity sends relies on that answer), as is api-version; a proxied request (X-Forwarded-For) is
 * refused; tokens need a resource.
 */
export function imdsReply(req: ImdsRequest, machine: ImdsMachine | undefined, issueToken: (resource: string) => { token: string; clientId: string; expiresInSeconds: number }): ImdsReply {
  const segs = req.url.pathname.split('/').filter(Boolean);
  const identity = segs[0] === 'metadata' && segs[1] === 'identity';
  if (req.headers['x-forwarded-for'] !== undefined) return { status: 400, body: { error: 'Bad request. Request contains X-Forwarded-For header' } };
  if (String(req.headers.metadata ?? '').toLowerCase() !== 'true') {
    return identity
      ? { status: 400, body: { error: 'invalid_request', error_description: 'Required metadata header not specified' } }
      : { status: 400, body: { error: 'Bad request. Required metadata header not specified' } };
  }
  if (!req.url.searchParams.get('api-version')) {
    return { status: 400, body: { error: 'Bad request. api-version was not specified in the request. For more information refer to aka.ms/azureimds', 'newest-versions': NEWEST_VERSIONS } };
  }
  if (req.method !== 'GET' && !(identity && req.method === 'POST')) return { status: 405, body: { error: 'Method not allowed' } };
  if (!machine) return { status: 404, body: { error: 'Not found' } };
  if (identity && segs[2] === 'oauth2' && segs[3] === 'token' && segs.length === 4) {
    const resource = req.url.searchParams.get('resource');
    if (!resource) return { status: 400, body: { error: 'invalid_request', error_description: 'Required query variable \'resource\' is missing' } };
    const t = issueToken(resource);
    const now = Math.floor(Date.now() / 1000);
    return {
      status: 200,
      body: {
        access_token: t.token, client_id: t.clientId, expires_in: String(t.expiresInSeconds), expires_on: String(now + t.expiresInSeconds),
        ext_expires_in: String(t.expiresInSeconds), not_before: String(now), resource, token_type: 'Bearer',
      },
    };
  }
  if (segs[0] === 'metadata' && segs[1] === 'instance') {
    const doc = { compute: imdsCompute(machine), network: imdsNetwork(machine.nics) };
    const found = walk(doc, segs.slice(2));
    if (found !== undefined) return { status: 200, body: found };
  }
  return { status: 404, body: { error: 'Not found' } };
}
