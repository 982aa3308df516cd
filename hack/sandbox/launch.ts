import path from 'node:path';
import type { ScenarioNode } from '../azure-emulator/index.js';

/**
 * What the sandbox starts: the compiled controller and one node agent per VM, each described as a
 * ComponentLaunch (flags, service account, API server) that a launcher turns into a process.
 */

/**
 * One component the sandbox starts: the compiled controller or a node agent, with its flags (paths are the
 * host's), the service account it runs as and the API server. The default launcher runs
 * `node dist/<command> --kubeconfig <its own> ...args`; a test can run it another way (from the image).
 */
export interface ComponentLaunch {
  name: string;
  command: 'controller' | 'agent';
  nodeName?: string;
  args: string[];
  serviceAccount: { namespace: string; name: string; token: string };
  kube: { url: string; caPem?: string };
  logDir: string;
}

export const PODVNET_NAMESPACE = 'podvnet-system';

/** What every launch shares: the API server, where logs go, how to mint a service account's token. */
export interface LaunchContext {
  kube: { url: string; caPem?: string; serviceAccountToken(namespace: string, name: string, o?: { nodeName?: string }): string };
  logDir: string;
}

/** The controller: leader election off (the only replica), Azure at the emulator, metrics on a free port. */
export function controllerLaunch(ctx: LaunchContext, azure: { url: string; caFile: string }): ComponentLaunch {
  return {
    name: 'controller', command: 'controller', kube: { url: ctx.kube.url, caPem: ctx.kube.caPem }, logDir: ctx.logDir,
    serviceAccount: { namespace: PODVNET_NAMESPACE, name: 'podvnet-controller', token: ctx.kube.serviceAccountToken(PODVNET_NAMESPACE, 'podvnet-controller') },
    args: ['--azure-endpoint', azure.url, '--azure-ca-file', azure.caFile,
      '--credential', 'emulator', '--http-port', '0', '--http-host', '127.0.0.1', '--leader-elect', 'false',
      '--event-namespace', 'default', '--poll-interval-ms', '50'],
  };
}

/** Where a node agent keeps its socket, state and DEL queue: under `dir`, one per node. */
export function agentPaths(dir: string): { socket: string; stateDir: string; delQueueDir: string } {
  return { socket: path.join(dir, 'agent.sock'), stateDir: path.join(dir, 'state'), delQueueDir: path.join(dir, 'del-queue') };
}

/** A node agent driving the datapath inside its VM's namespace, with a token bound to its node. */
export function agentLaunch(ctx: LaunchContext, m: ScenarioNode, netnsPath: string, dir: string): ComponentLaunch {
  const p = agentPaths(dir);
  return {
    name: `agent-${m.nodeName}`, command: 'agent', nodeName: m.nodeName, kube: { url: ctx.kube.url, caPem: ctx.kube.caPem }, logDir: ctx.logDir,
    serviceAccount: { namespace: PODVNET_NAMESPACE, name: 'podvnet-node', token: ctx.kube.serviceAccountToken(PODVNET_NAMESPACE, 'podvnet-node', { nodeName: m.nodeName }) },
    args: ['--node-name', m.nodeName, '--host-netns', netnsPath,
      '--socket', p.socket, '--cnm-socket=', '--state-dir', p.stateDir, '--del-queue-dir', p.delQueueDir, '--metrics-address', '127.0.0.1:0',
      '--cooldown-ms', '1000', '--sync-interval-ms', '200',
      // as the DaemonSet runs it: an ADD with no free IP waits in the agent for the IPs its demand asked for
      '--add-wait-ms', '30000'],
  };
}
