import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { IPsPerNode, Scaling } from '../../crds/api/nodeippool.js';
import { describeIssues } from '../../crds/api/validation.js';
import type { AgentConfig } from './config.js';
import { readInstance } from './imds.js';
import type { RecordSource } from './sync.js';

/**
 * The record source of a standalone agent (a Docker host on an Azure VM, no Kubernetes): IMDS in static
 * mode, the VM's own NIC through ARM in managed mode. The Azure SDKs are loaded only in managed mode.
 */

export const splitCIDRs = (list: string): string[] => list.split(',').map((c) => c.trim()).filter(Boolean);

export async function standaloneSource(config: AgentConfig, logger: Logger): Promise<RecordSource> {
  if (config.standalone === 'static') {
    const { ImdsRecordSource } = await import('./imds-source.js');
    return new ImdsRecordSource({ nodeName: config.nodeName, vnetPrefixes: splitCIDRs(config.vnetPrefixes), intervalMs: config.imdsIntervalMs, logger });
  }
  const ipsPerNode = IPsPerNode.safeParse({ min: config.ipsMin, max: config.ipsMax });
  if (!ipsPerNode.success) throw new Error(`--ips-min/--ips-max: ${describeIssues(ipsPerNode.error)}`);
  const scaling = Scaling.safeParse({
    batchSize: config.batchSize,
    requestThresholdPercent: config.requestThresholdPercent,
    releaseThresholdPercent: config.releaseThresholdPercent,
    ...(config.warmIps !== undefined ? { warmIPs: config.warmIps } : {}),
  });
  if (!scaling.success) throw new Error(`scaling flags: ${describeIssues(scaling.error)}`);
  if (scaling.data.batchSize > ipsPerNode.data.max) throw new Error(`--batch-size ${scaling.data.batchSize} must not exceed --ips-max ${ipsPerNode.data.max}`);

  const [{ ManagedIdentityCredential }, { ArmAdapter, armClientFactory }, { ArmLimiter }, { parseProviderID }, { ManagedNicSource }] = await Promise.all([
    import('@azure/identity'),
    import('../../controllers/azure.js'),
    import('../../controllers/limiter.js'),
    import('../../controllers/providerid.js'),
    import('./managed-source.js'),
  ]);
  // Which VM this is: IMDS says (and only from inside it).
  const instance = await readInstance();
  const machine = parseProviderID(`azure://${instance.compute.resourceId}`);
  const credential = config.managedIdentityClientId ? new ManagedIdentityCredential({ clientId: config.managedIdentityClientId }) : new ManagedIdentityCredential();
  const extra = config.azureCaFile ? { tlsOptions: { ca: readFileSync(config.azureCaFile, 'utf8') } } : {};
  // One NIC: ARM's budgets are never near; the limiter is there because the adapter calls through it.
  const limiter = new ArmLimiter({ concurrency: 4, writes: { capacity: 10, refillPerSecond: 1 }, reads: { capacity: 50, refillPerSecond: 5 } });
  const azure = new ArmAdapter(armClientFactory(credential, { endpoint: config.azureEndpoint, extra }), limiter, () => {}, 200);
  logger.info({ vm: machine.id, azure: config.azureEndpoint, identity: config.managedIdentityClientId ?? 'system-assigned' }, 'standalone managed mode: this agent manages its own NIC');
  return new ManagedNicSource({
    azure, machine, nodeName: config.nodeName, subnetID: config.subnetId,
    ipsPerNode: ipsPerNode.data, scaling: scaling.data,
    snat: { enabled: true, excludeCIDRs: [] },
    resyncMs: config.azureResyncMs,
    logger,
  });
}

/** What a container that found no free IP is told on a standalone host. */
export function standaloneNoFreeIPAdvice(config: AgentConfig): string | undefined {
  if (config.standalone === 'static') {
    return 'this host is in static mode: its containers get the secondary IPs already on the VM\'s NIC. Add one for each container ' +
      '(az network nic ip-config create -g <resource group> --nic-name <NIC> -n ipconfig<N>, or the portal); the agent sees it within ' +
      `${Math.ceil(config.imdsIntervalMs / 1000)} s. Retry then; if this persists, check that the new address is in the NIC's primary subnet.`;
  }
  if (config.standalone === 'managed') {
    return `the agent is adding a batch of ${config.batchSize} secondary IPs to this VM's NIC. Retry in a few seconds; if this persists, ` +
      `check --ips-max (${config.ipsMax}), the subnet's free addresses, and that the VM's identity may write its NIC (the agent's log says which).`;
  }
  return undefined;
}
