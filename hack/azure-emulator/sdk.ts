// What a test needs to point the real Azure SDK clients at the emulator.
import type { AccessToken, TokenCredential } from '@azure/core-auth';
import { NetworkManagementClient } from '@azure/arm-network';
import { ComputeManagementClient } from '@azure/arm-compute';

/** Where the emulator listens and the certificate to trust; an AzureEmulator or the command's JSON line. */
export interface EmulatorEndpoint { url: string; ca: string }

/** Any bearer token works; the emulator only checks that one is sent. */
export class EmulatorCredential implements TokenCredential {
  calls = 0;
  constructor(private readonly token = 'podvnet-emulator-token') {}
  async getToken(): Promise<AccessToken> {
    this.calls++;
    return { token: this.token, expiresOnTimestamp: Date.now() + 3600_000 };
  }
}

export interface TestRetryOptions {
  /** Retries of 429/5xx/network errors by core-rest-pipeline (default 3). */
  maxRetries?: number;
  /** Base delay of exponential retries, used when no Retry-After came (default 20 ms). */
  retryDelayInMs?: number;
  maxRetryDelayInMs?: number;
}

/**
 * Client options for NetworkManagementClient and ComputeManagementClient: endpoint ($host for
 * arm-network), TLS trust of the emulator's certificate, and short retry delays for tests.
 * 429 responses still wait their Retry-After.
 */
export function emulatorClientOptions(emu: EmulatorEndpoint, retry: TestRetryOptions = {}) {
  return {
    endpoint: emu.url,
    $host: emu.url,
    credentialScopes: ['https://management.azure.com/.default'],
    tlsOptions: { ca: emu.ca },
    retryOptions: {
      maxRetries: retry.maxRetries ?? 3,
      retryDelayInMs: retry.retryDelayInMs ?? 20,
      maxRetryDelayInMs: retry.maxRetryDelayInMs ?? 200,
    },
  };
}

export function createNetworkClient(emu: EmulatorEndpoint, subscriptionId: string,
  opts: { credential?: TokenCredential; retry?: TestRetryOptions } = {}): NetworkManagementClient {
  return new NetworkManagementClient(opts.credential ?? new EmulatorCredential(), subscriptionId, emulatorClientOptions(emu, opts.retry));
}

export function createComputeClient(emu: EmulatorEndpoint, subscriptionId: string,
  opts: { credential?: TokenCredential; retry?: TestRetryOptions } = {}): ComputeManagementClient {
  return new ComputeManagementClient(opts.credential ?? new EmulatorCredential(), subscriptionId, emulatorClientOptions(emu, opts.retry));
}
