/** Reading the node's links: the shape of `ip -j link show`, and the pods of a bridge from their host veths. */
import { ipJSON } from './exec.js';
import { decodeAlias, retiredGroup } from './names.js';
import type { NodeNetwork } from './types.js';

export interface LinkInfo {
  ifname: string; mtu: number; address: string; master?: string; flags?: string[]; ifalias?: string;
  ifindex: number; link_index?: number; group?: string; linkinfo?: { info_kind?: string; info_slave_kind?: string; info_slave_data?: Record<string, unknown> };
}

/** A pod of the bridge as its host veth records it (the alias always carries the IP). */
export interface VethPod { hostVeth: string; containerId: string; ifName: string; ip: string }

/**
 * The pods of this bridge, from the host veths' aliases (the kernel is the record; see pod.ts
 * listAttachments). A retired veth (its pod was deleted; retired-veths.ts) is no pod's any more.
 */
export async function attachedVeths(net: NodeNetwork): Promise<VethPod[]> {
  const veths = await ipJSON<LinkInfo>(net.hostNetns, ['link', 'show', 'type', 'veth']);
  const retired = String(retiredGroup(net.bridgeName));
  const out: VethPod[] = [];
  for (const l of veths) {
    if (l.group === retired) continue;
    const a = decodeAlias(l.ifalias);
    if (a && a.bridge === net.bridgeName) out.push({ hostVeth: l.ifname, containerId: a.containerId, ifName: a.ifName, ip: a.ip });
  }
  return out;
}
