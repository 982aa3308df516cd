/**
 * PodVNet datapath: everything that touches the kernel for pods on this node.
 * (Stubs: the implementation lands in the following commits; signatures are final.)
 */
import type { Attachment, NodeNetwork, PodInterface, PodInterfaceResult, PodRef } from './types.js';

export * from './types.js';

const todo = (what: string): never => {
  throw new Error(`datapath.${what}: not implemented yet`);
};

export async function ensureNode(net: NodeNetwork): Promise<void> { void net; todo('ensureNode'); }
export async function attachPod(net: NodeNetwork, pod: PodInterface): Promise<PodInterfaceResult> { void net; void pod; return todo('attachPod'); }
export async function detachPod(net: NodeNetwork, pod: PodRef): Promise<void> { void net; void pod; todo('detachPod'); }
export async function checkPod(net: NodeNetwork, pod: PodInterface): Promise<void> { void net; void pod; todo('checkPod'); }
export async function listAttachments(net: NodeNetwork): Promise<Attachment[]> { void net; return todo('listAttachments'); }
export async function teardownNode(net: NodeNetwork): Promise<void> { void net; todo('teardownNode'); }
export async function hostInterfaceMTU(ifName: string, hostNetns?: string): Promise<number> { void ifName; void hostNetns; return todo('hostInterfaceMTU'); }
export function hostVethName(containerId: string, ifName: string): string { void containerId; void ifName; return todo('hostVethName'); }
