import type { ExecutionContext } from 'ava';
import { Sandbox, SANDBOX_NETWORK, type Pod, type SandboxNode, type SandboxOptions } from '../../hack/sandbox/sandbox.js';
import { startPeerServer } from '../../node-plugin/datapath/testing/testkit.js';

/**
 * The set-up the whole-system sandbox tests share (e2e/sandbox*.test.ts): a sandbox of one standalone VM
 * and one scale-set instance closed when the test ends, waits on every node's record, pods on every node,
 * a burst that meets an empty pool, and the two peers (a VNet host, a host outside) that tell which source
 * address arrives.
 */

/** A sandbox of a standalone VM and a scale-set instance (both NIC update paths), closed at the test's end. */
export async function startVmAndScaleSet(t: ExecutionContext, opts: SandboxOptions = {}): Promise<{ sandbox: Sandbox; vm: SandboxNode; vmss: SandboxNode }> {
  const sandbox = await Sandbox.start({ vms: 1, scaleSetInstances: 1, ...opts });
  t.teardown(() => sandbox.close());
  const [vm, vmss] = sandbox.nodes;
  t.truthy(vm && vmss && vmss.azure.kind === 'vmss');
  return { sandbox, vm: vm!, vmss: vmss! };
}

/** Waits until the record of every node has a status that `holds`. */
export function waitForEveryRecord(sandbox: Sandbox, what: string, holds: (status: any) => boolean, timeoutMs: number): Promise<void> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return sandbox.waitFor(what, async () => {
    for (const n of sandbox.nodes) if (!holds((await sandbox.record(n.name)).status)) return false;
    return true;
  }, timeoutMs);
}

/** `perNode` pods on every node, named by `name(node index, pod number from 1)`, added one after another. */
export async function podsOnEveryNode(sandbox: Sandbox, perNode: number, name: (k: number, i: number) => string): Promise<Pod[]> {
  const pods: Pod[] = [];
  for (const [k, n] of sandbox.nodes.entries()) for (let i = 1; i <= perNode; i++) pods.push(await sandbox.addPod(n.name, name(k, i)));
  return pods;
}

/**
 * A burst of pods on one node, one after another: an ADD that meets an empty pool must be refused with
 * "try again later" (asserted each time), and is retried as a runtime would.
 */
export async function burstOn(t: ExecutionContext, sandbox: Sandbox, node: SandboxNode, names: string[]): Promise<Pod[]> {
  const burst: Pod[] = [];
  for (const name of names) {
    burst.push(await sandbox.addPodRetrying(node.name, name, {
      deadlineMs: 90_000,
      onRefused: (e) => t.regex(e.message, /try again later|no free|"code": ?11/i, 'an empty pool answers "try again later"'),
    }));
  }
  return burst;
}

/** Runs `fn` with a peer server on the VNet host and one on the outside host, both on `port`. */
export async function withPeers<T>(sandbox: Sandbox, port: number, fn: (hosts: { vnetIP: string; outsideIP: string }) => Promise<T>): Promise<T> {
  const vnetPeer = startPeerServer(sandbox.vnetHost.netns, port);
  const outsidePeer = startPeerServer(sandbox.outsideHost.netns, port);
  try {
    return await fn({ vnetIP: SANDBOX_NETWORK.vnetHostIP, outsideIP: SANDBOX_NETWORK.outsideHostIP });
  } finally {
    vnetPeer.stop();
    outsidePeer.stop();
  }
}
