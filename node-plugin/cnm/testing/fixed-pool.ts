import type { NodeNetwork } from '../../datapath/index.js';
import { parseCIDR } from '../../../crds/ipv4.js';
import { NoFreeAddressError, PoolNotReadyError } from '../../errors.js';
import type { AddressOwner, AssignedAddress, PodAddressService } from '../types.js';

/**
 * A PodAddressService over a fixed list of IPs, for tests of the CNM driver (protocol tests and the real
 * Docker test). It keeps the contract of the agent's service: acquire is idempotent per
 * (containerId, ifName), two owners never share an IP, release is idempotent, and an empty pool fails with
 * the agent's NoFreeAddressError (../../errors.ts) whose message names the node, as the agent's does.
 */


export interface FixedPool extends PodAddressService {
  /** Owner key ("containerId/ifName") -> IP, for assertions. */
  readonly held: Map<string, string>;
  readonly calls: string[];
  setNode(node: NodeNetwork | undefined): void;
}

export function fixedPoolAddressService(opts: { node: NodeNetwork | undefined; ips: string[]; nodeName?: string }): FixedPool {
  let node = opts.node;
  let lastNode = opts.node;
  const free = [...opts.ips];
  const held = new Map<string, string>();
  const calls: string[] = [];
  const key = (o: Pick<AddressOwner, 'containerId' | 'ifName'>) => `${o.containerId}/${o.ifName}`;
  const answer = (ip: string): AssignedAddress => {
    if (!node) throw new PoolNotReadyError('node record has no status yet');
    return { ip, prefixLength: parseCIDR(node.podSubnet).prefixLength, gateway: node.gatewayIP };
  };
  return {
    held,
    calls,
    setNode(n) {
      node = n;
      lastNode = n ?? lastNode;
    },
    async acquire(owner) {
      calls.push(`acquire ${key(owner)}`);
      if (!node) throw new PoolNotReadyError(`node ${opts.nodeName ?? 'test-node'}: its NodeIPAllocation has no status yet`);
      const existing = held.get(key(owner));
      if (existing) return answer(existing);
      const ip = free.shift();
      if (!ip) {
        throw new NoFreeAddressError(
          `node ${opts.nodeName ?? 'test-node'}: all ${held.size} IPs of its pool are in use; demand raised to ${held.size + 1}`,
        );
      }
      held.set(key(owner), ip);
      return answer(ip);
    },
    async release(owner) {
      calls.push(`release ${key(owner)}`);
      const ip = held.get(key(owner));
      if (!ip) return;
      held.delete(key(owner));
      free.push(ip);
    },
    lookup(owner) {
      const ip = held.get(key(owner));
      return ip && node ? answer(ip) : undefined;
    },
    nodeNetwork() {
      return node;
    },
    teardownNetwork() {
      return node ?? lastNode;
    },
  };
}
