/**
 * Names and labels the datapath puts into the kernel. Pure functions: after an agent restart everything
 * is found again from these (veth name from the pod's identity, the rest from the veth's alias).
 */
import { createHash } from 'node:crypto';

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * Host-side veth name for (containerId, ifName): 'pvn' + 11 hex digits of a hash = 14 characters
 * (Linux allows 15). 44 bits make a collision among 250 pods about 1 in 10^9.
 */
export function hostVethName(containerId: string, ifName: string): string {
  return 'pvn' + digest(`${containerId}\0${ifName}`).toString('hex').slice(0, 11);
}

/**
 * What a retired pod interface is renamed to inside the pod's namespace ('pvr' + 11 hex digits), so the
 * runtime can give its name to another network's interface at once (retired-veths.ts).
 */
export function retiredPodIfName(containerId: string, ifName: string): string {
  return 'pvr' + digest(`retired\0${containerId}\0${ifName}`).toString('hex').slice(0, 11);
}

/**
 * The metric of the pod's /32 route on the node: a per-(containerId, ifName) number, so that the route
 * identifies its pod. Two pods that held the same IP one after the other have two distinct routes (both
 * via the bridge, so either delivers correctly), and removing one pod's route by (ip, metric) can never
 * remove another's: DEL needs no read-back and a late DEL is harmless.
 */
export function routeMetric(containerId: string, ifName: string): number {
  return 0x1000 + (digest(`route\0${containerId}\0${ifName}`).readUInt32BE(0) & 0x0fffffff);
}

/**
 * A stable, locally administered unicast MAC for `seed`. Setting MACs ourselves (instead of letting the
 * kernel pick random ones) means a retried ADD reports the same MACs and no read-back is needed.
 */
export function stableMAC(seed: string): string {
  const b = digest(seed).subarray(0, 6);
  b[0] = (b[0]! & 0xfc) | 0x02; // unicast, locally administered
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export const podMACs = (containerId: string, ifName: string): { host: string; container: string } => ({
  host: stableMAC(`host\0${containerId}\0${ifName}`),
  container: stableMAC(`pod\0${containerId}\0${ifName}`),
});

/** The bridge's MAC is pinned: otherwise Linux gives it the lowest port MAC, which changes as pods come and go. */
export const bridgeMAC = (bridgeName: string): string => stableMAC(`bridge\0${bridgeName}`);

export interface AliasFields { bridge: string; containerId: string; ifName: string; ip: string }

const ALIAS_TAG = 'podvnet';
// encodeURIComponent leaves ' ! ( ) * ~ alone; ' would confuse `ip -batch` quoting, so escape it too.
const enc = (s: string): string => encodeURIComponent(s).replace(/'/g, '%27');

/** The host veth's alias (`ip link set ... alias`): who the veth belongs to, for GC and restarts. */
export function encodeAlias(f: AliasFields): string {
  return [ALIAS_TAG, f.bridge, f.containerId, f.ifName, f.ip].map(enc).join('/');
}

export function decodeAlias(alias: string | undefined): AliasFields | undefined {
  if (!alias) return undefined;
  const parts = alias.split('/');
  if (parts.length !== 5 || parts[0] !== ALIAS_TAG) return undefined;
  try {
    const [, bridge, containerId, ifName, ip] = parts.map(decodeURIComponent) as [string, string, string, string, string];
    return { bridge, containerId, ifName, ip };
  } catch {
    return undefined;
  }
}

/**
 * The link group where a bridge's retired pod veths wait for their deletion (retired-veths.ts): a
 * per-bridge number in [2^29, 2^30), apart from the default group 0 everything else on a node is in and
 * from link-removals.ts's one-off groups in [2^30, 2^31).
 */
export function retiredGroup(bridgeName: string): number {
  return 2 ** 29 + (digest(`retired\0${bridgeName}`).readUInt32BE(0) % 2 ** 29);
}

/** iptables chain names (at most 28 characters): the default bridge gets the plain names. */
export function chainNames(bridgeName: string): { snat: string; forward: string; antispoof: string } {
  const suffix = bridgeName === 'podvnet0' ? '' : `-${bridgeName}`;
  return { snat: `PODVNET-SNAT${suffix}`, forward: `PODVNET-FWD${suffix}`, antispoof: `PODVNET-SRC${suffix}` };
}
