import { BLOCK_PREFIX_LENGTH } from '../crds/api/group.js';

/**
 * How a block ip-config reaches Azure through SDKs that do not all know the field.
 *
 * - @azure/arm-network 36 models `privateIPAddressPrefixLength` on NetworkInterfaceIPConfiguration
 *   (NIC API 2025-05-01): a NIC PUT carries it as it is.
 * - @azure/arm-compute 24.1 does not: its serializer for a scale-set VM's ip-configuration keeps only the
 *   fields it knows, and its update uses Compute API 2026-03-01, older than the 2026-07-02 that carries the
 *   block size in the VM model. So the caller names the block ip-configs in a marker header and this
 *   pipeline policy, on the scale-set VM PUT only, writes the field into the serialized body and asks for
 *   the Compute API version that has it. The marker never leaves the process.
 */

export const BLOCK_IP_CONFIGS_MARKER = 'x-podvnet-block-ip-configs';
export const COMPUTE_API_VERSION_WITH_BLOCKS = '2026-07-02';

interface PipelineRequestLike {
  method: string;
  url: string;
  body?: unknown;
  headers: { get(n: string): string | undefined; set(n: string, v: string): void; delete(n: string): void };
}

const SCALE_SET_VM = /\/virtualMachineScaleSets\/[^/]+\/virtualMachines\/[^/?]+(\?|$)/i;

/** Sets privateIPAddressPrefixLength on the named ip-configs of every NIC configuration in a VM model body. */
export function addPrefixLengths(body: unknown, names: ReadonlySet<string>, prefixLength = BLOCK_PREFIX_LENGTH): number {
  let set = 0;
  const model = body as { properties?: { networkProfileConfiguration?: { networkInterfaceConfigurations?: Array<{ properties?: { ipConfigurations?: Array<{ name?: string; properties?: Record<string, unknown> }> } }> } } };
  for (const nicCfg of model?.properties?.networkProfileConfiguration?.networkInterfaceConfigurations ?? []) {
    for (const ipc of nicCfg.properties?.ipConfigurations ?? []) {
      if (ipc.name === undefined || !names.has(ipc.name.toLowerCase())) continue;
      ipc.properties = { ...(ipc.properties ?? {}), privateIPAddressPrefixLength: prefixLength };
      set++;
    }
  }
  return set;
}

export function blockPrefixPolicy() {
  return {
    name: 'podvnetBlockPrefix',
    async sendRequest(request: PipelineRequestLike, next: (r: never) => Promise<unknown>) {
      const marked = request.headers.get(BLOCK_IP_CONFIGS_MARKER);
      if (marked !== undefined) {
        request.headers.delete(BLOCK_IP_CONFIGS_MARKER);
        if (request.method === 'PUT' && SCALE_SET_VM.test(request.url) && typeof request.body === 'string') {
          const names = new Set(marked.split(',').map((n) => n.trim().toLowerCase()).filter(Boolean));
          const body = JSON.parse(request.body) as unknown;
          addPrefixLengths(body, names);
          request.body = JSON.stringify(body);
          request.url = request.url.replace(/([?&]api-version=)[^&]*/i, `$1${COMPUTE_API_VERSION_WITH_BLOCKS}`);
        }
      }
      return next(request as never);
    },
  };
}
