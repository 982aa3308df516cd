import type { AgentAddressService } from './address-service.js';
import type { Readiness } from './metrics.js';
import type { NodeNetworkKeeper } from './node-network.js';

/**
 * What /readyz (and the podvnet_agent_ready metric) answers: ready once the record is loaded and the node
 * network is intact; a node no pool selects is ready too (the DaemonSet runs everywhere, and the agent is
 * healthy there); never while shutting down.
 */
export function agentReadiness(deps: {
  addresses: Pick<AgentAddressService, 'recordPresence' | 'nodeNetwork' | 'isReady' | 'notReadyReason'>;
  network: Pick<NodeNetworkKeeper, 'problems' | 'setupError'>;
  closing: () => boolean;
}): () => Promise<Readiness> {
  const { addresses, network, closing } = deps;
  return async () => {
    if (closing()) return { ready: false, detail: 'shutting down' };
    if (addresses.recordPresence() === 'absent') return { ready: true, detail: addresses.notReadyReason() };
    if (!addresses.nodeNetwork() || !addresses.isReady()) return { ready: false, detail: addresses.notReadyReason() };
    const problems = await network.problems();
    if (problems?.length) {
      const setupError = network.setupError;
      return { ready: false, detail: `the node network is broken: ${problems.join('; ')}${setupError ? `; setting it up failed: ${setupError}` : ''}` };
    }
    return { ready: true };
  };
}
