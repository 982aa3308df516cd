// Real @azure/identity credentials against the emulated Entra token endpoint, then ARM with their tokens.
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientSecretCredential, WorkloadIdentityCredential } from '@azure/identity';
import { AzureEmulator } from './server.js';
import { createNetworkClient } from './sdk.js';

const TENANT = '72f988bf-0000-4000-8000-000000000001';
const SUB = '00000000-0000-0000-0000-000000000000';

async function start(t: { teardown(f: () => Promise<void> | void): void }) {
  const emu = await AzureEmulator.start({
    config: { requireIssuedToken: true, entraClients: { 'controller-app': 's3cret', 'workload-app': 'unused' } },
    scenario: { vms: [{ count: 1 }] },
  });
  t.teardown(() => emu.close());
  const identityOptions = { authorityHost: emu.url, disableInstanceDiscovery: true, tlsOptions: { ca: emu.ca } };
  return { emu, identityOptions };
}

test('ClientSecretCredential gets a token from the emulator; ARM accepts only issued tokens', async (t) => {
  const { emu, identityOptions } = await start(t);
  const cred = new ClientSecretCredential(TENANT, 'controller-app', 's3cret', identityOptions);
  const net = createNetworkClient(emu, SUB, { credential: cred });
  const nic = await net.networkInterfaces.get('podvnet-rg', 'vm-0-nic');
  t.is(nic.name, 'vm-0-nic');
  t.is(emu.entra.byClient.get('controller-app'), 1);
  t.is(emu.calls().byKind['entra.token'], 1);

  const forged = createNetworkClient(emu, SUB); // EmulatorCredential: a token nobody issued
  const e = await t.throwsAsync(forged.networkInterfaces.get('podvnet-rg', 'vm-0-nic'));
  t.is((e as { statusCode?: number }).statusCode, 401);
  t.is((e as { code?: string }).code, 'InvalidAuthenticationToken');
});

test('a wrong client secret fails with the AADSTS code', async (t) => {
  const { identityOptions } = await start(t);
  const cred = new ClientSecretCredential(TENANT, 'controller-app', 'wrong', identityOptions);
  const e = await t.throwsAsync(cred.getToken('https://management.azure.com/.default'));
  t.regex(e!.message, /AADSTS7000215/);
});

test('WorkloadIdentityCredential exchanges the projected service-account token file', async (t) => {
  const { emu, identityOptions } = await start(t);
  const dir = mkdtempSync(join(tmpdir(), 'wi-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6cG9kdm5ldDpjb250cm9sbGVyIn0.');
  const cred = new WorkloadIdentityCredential({ tenantId: TENANT, clientId: 'workload-app', tokenFilePath: tokenFile, ...identityOptions });
  const net = createNetworkClient(emu, SUB, { credential: cred });
  t.is((await net.networkInterfaces.get('podvnet-rg', 'vm-0-nic')).name, 'vm-0-nic');
  t.is(emu.entra.byClient.get('workload-app'), 1);
});
