import test from 'ava';
import { request } from 'node:http';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import pino from 'pino';
import type { NodeNetwork } from '../datapath/index.js';
import { NoFreeAddressError as AgentNoFreeAddressError, PoolNotReadyError as AgentPoolNotReadyError } from '../errors.js';
import { createCnmServer, listenOnSocket, removePluginSpec, writePluginSpec, type CnmServer } from './index.js';
import { dockerIfName, type DockerVeths } from './docker-veth.js';
import { fixedPoolAddressService, type FixedPool } from './testing/fixed-pool.js';
import { STATE_FILE } from './state.js';
import { PLUGIN_CONTENT_TYPE } from './protocol.js';
import type { Datapath } from './types.js';

const NODE: NodeNetwork = {
  bridgeName: 'podvnet0',
  hostInterface: 'eth0',
  nicMAC: '00:0d:3a:29:f1:17',
  primaryIP: '10.1.0.4',
  podSubnet: '10.1.0.0/24',
  gatewayIP: '10.1.0.1',
  vnetPrefixes: ['10.1.0.0/16'],
  snat: { enabled: true, excludeCIDRs: [] },
  mtu: 1500,
};
const NET_ID = 'a'.repeat(64);
const EP_ID = 'b'.repeat(64);

interface Reply {
  status: number;
  type: string | undefined;
  body: any;
}

function call(socketPath: string, method: string, body?: unknown, opts: { raw?: string; verb?: string } = {}): Promise<Reply> {
  const payload = opts.raw ?? (body === undefined ? '' : JSON.stringify(body));
  return new Promise<Reply>((resolve, reject) => {
    // Settle only when our side finished writing too (a large body can finish after the answer).
    let answer: Reply | undefined;
    let written = false;
    const settle = () => answer && written && resolve(answer);
    const req = request(
      { socketPath, path: `/${method}`, method: opts.verb ?? 'POST', headers: { 'Content-Type': PLUGIN_CONTENT_TYPE, Accept: PLUGIN_CONTENT_TYPE } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON (404 text)
          }
          answer = { status: res.statusCode ?? 0, type: res.headers['content-type'], body: parsed };
          settle();
        });
      },
    );
    req.on('error', reject);
    req.on('finish', () => {
      written = true;
      settle();
    });
    req.end(payload);
  });
}

/** Records datapath and veth calls; the kernel side is covered by the real Docker test in e2e/. */
function fakeDatapath(log: string[], attachments: Awaited<ReturnType<Datapath['listAttachments']>> = []): Datapath {
  return {
    ensureNode: async (net) => void log.push(`ensureNode ${net.bridgeName}`),
    attachHostVeth: async () => {
      throw new Error('attachHostVeth is called through the Docker veth seam');
    },
    detachPod: async (_net, pod) => void log.push(`detachPod ${pod.containerId}`),
    listAttachments: async () => attachments,
  };
}
function fakeVeths(log: string[]): DockerVeths {
  return {
    create: async (_dp, _net, ep) => {
      log.push(`create ${ep.owner} ${ep.ip}/${ep.prefixLength}`);
      return { srcName: 'pvdtest', hostVeth: 'pvhtest', mac: '02:00:00:00:00:01' };
    },
    remove: async (_dp, _net, ep) => void log.push(`remove ${ep.owner} ${ep.ip}`),
  };
}

interface Ctx {
  dir: string;
  sock: string;
  pool: FixedPool;
  log: string[];
  server: CnmServer;
}

async function start(t: { teardown(fn: () => unknown): void }, opts: { ips?: string[]; node?: NodeNetwork | null; dir?: string; pool?: FixedPool } = {}): Promise<Ctx> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'cnm-test-'));
  const sock = join(dir, `plugin-${Math.random().toString(36).slice(2)}.sock`);
  const pool = opts.pool ?? fixedPoolAddressService({ node: opts.node === null ? undefined : (opts.node ?? NODE), ips: opts.ips ?? ['10.1.0.10', '10.1.0.11'] });
  const log: string[] = [];
  const server = createCnmServer({
    addresses: pool,
    datapath: fakeDatapath(log),
    logger: pino({ level: 'silent' }),
    stateDir: join(dir, 'state'),
    dockerVeths: fakeVeths(log),
  });
  await listenOnSocket(server, sock);
  t.teardown(async () => {
    await server.shutdown();
    if (!opts.dir) rmSync(dir, { recursive: true, force: true });
  });
  return { dir, sock, pool, log, server };
}

/** What dockerd does for `docker network create --driver azure-vnet --ipam-driver azure-vnet --subnet S`. */
async function createNetwork(c: Ctx, subnet = '10.1.0.0/24'): Promise<string> {
  const pool = await call(c.sock, 'IpamDriver.RequestPool', { AddressSpace: 'azure-vnet-local', Pool: subnet, SubPool: '', Options: {}, V6: false });
  const gw = await call(c.sock, 'IpamDriver.RequestAddress', { PoolID: pool.body.PoolID, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } });
  const net = await call(c.sock, 'NetworkDriver.CreateNetwork', {
    NetworkID: NET_ID,
    Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': {} },
    IPv4Data: [{ AddressSpace: 'azure-vnet-local', Gateway: gw.body.Address, Pool: pool.body.Pool }],
    IPv6Data: [],
  });
  if (net.body.Err) throw new Error(net.body.Err);
  return pool.body.PoolID;
}

test('Plugin.Activate announces the network and IPAM drivers with the plugin content type', async (t) => {
  const c = await start(t);
  const r = await call(c.sock, 'Plugin.Activate');
  t.is(r.status, 200);
  t.is(r.type, PLUGIN_CONTENT_TYPE);
  t.deepEqual(r.body, { Implements: ['NetworkDriver', 'IpamDriver'] });
});

test('capabilities and default address spaces', async (t) => {
  const c = await start(t);
  t.deepEqual((await call(c.sock, 'NetworkDriver.GetCapabilities', null)).body, { Scope: 'local', ConnectivityScope: 'local' });
  t.deepEqual((await call(c.sock, 'IpamDriver.GetCapabilities')).body, { RequiresMACAddress: false, RequiresRequestReplay: false });
  t.deepEqual((await call(c.sock, 'IpamDriver.GetDefaultAddressSpaces', {})).body, {
    LocalDefaultAddressSpace: 'azure-vnet-local',
    GlobalDefaultAddressSpace: 'azure-vnet-global',
  });
});

test('RequestPool maps --subnet to the node pod subnet, with a stable id', async (t) => {
  const c = await start(t);
  const a = await call(c.sock, 'IpamDriver.RequestPool', { AddressSpace: 'azure-vnet-local', Pool: '10.1.0.0/24', V6: false });
  const b = await call(c.sock, 'IpamDriver.RequestPool', { AddressSpace: 'azure-vnet-local', Pool: '10.1.0.7/24' });
  t.is(a.body.Pool, '10.1.0.0/24');
  t.is(a.body.PoolID, b.body.PoolID);
  const auto = await call(c.sock, 'IpamDriver.RequestPool', { AddressSpace: 'azure-vnet-local' });
  t.is(auto.body.Pool, '10.1.0.0/24', 'no --subnet: the node pod subnet');
  const state = JSON.parse(readFileSync(join(c.dir, 'state', STATE_FILE), 'utf8'));
  t.is(state.pools[a.body.PoolID].refs, 3);
  await call(c.sock, 'IpamDriver.ReleasePool', { PoolID: a.body.PoolID });
  const after = JSON.parse(readFileSync(join(c.dir, 'state', STATE_FILE), 'utf8'));
  t.is(after.pools[a.body.PoolID].refs, 2);
});

test('RequestPool says why a subnet cannot be used', async (t) => {
  const c = await start(t);
  const wrong = await call(c.sock, 'IpamDriver.RequestPool', { AddressSpace: 'azure-vnet-local', Pool: '192.168.5.0/24' });
  t.is(wrong.status, 200);
  t.regex(wrong.body.Err, /--subnet=192\.168\.5\.0\/24 does not match this node's pod subnet 10\.1\.0\.0\/24/);
  t.regex(wrong.body.Err, /use --subnet=10\.1\.0\.0\/24/);
  const v6 = await call(c.sock, 'IpamDriver.RequestPool', { AddressSpace: 'azure-vnet-local', V6: true });
  t.regex(v6.body.Err, /IPv6 is not supported/);
  const v6pool = await call(c.sock, 'IpamDriver.RequestPool', { AddressSpace: 'azure-vnet-local', Pool: 'fd00::/64', V6: true });
  t.regex(v6pool.body.Err, /not an IPv4 CIDR \(IPv6 is not supported\)/);
  const sub = await call(c.sock, 'IpamDriver.RequestPool', { AddressSpace: 'azure-vnet-local', Pool: '10.1.0.0/24', SubPool: '10.1.0.128/25' });
  t.regex(sub.body.Err, /--ip-range \(10\.1\.0\.128\/25\) is not supported/);
});

test('a container is taken down even after the node\'s record is gone (the node left every pool)', async (t) => {
  const c = await start(t);
  const poolId = await createNetwork(c);
  await call(c.sock, 'IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: null });
  const owner = [...c.pool.held.keys()][0]!.split('/')[0]!;
  await call(c.sock, 'NetworkDriver.CreateEndpoint', {
    NetworkID: NET_ID, EndpointID: EP_ID, Options: {}, Interface: { Address: '10.1.0.10/24', AddressIPv6: '', MacAddress: '' },
  });
  await call(c.sock, 'NetworkDriver.Join', { NetworkID: NET_ID, EndpointID: EP_ID, SandboxKey: '/var/run/docker/netns/abc', Options: {} });
  c.pool.setNode(undefined);
  t.deepEqual((await call(c.sock, 'NetworkDriver.DeleteEndpoint', { NetworkID: NET_ID, EndpointID: EP_ID })).body, {});
  t.true(c.log.includes(`remove ${owner} 10.1.0.10`), 'the veth goes with the last known node network');
});

test('RequestPool before the node record has a status explains what to check', async (t) => {
  const c = await start(t, { node: null });
  const r = await call(c.sock, 'IpamDriver.RequestPool', { AddressSpace: 'azure-vnet-local', Pool: '10.1.0.0/24' });
  t.regex(r.body.Err, /IP pool is not ready yet.*NodeIPAllocation has no status/);
  t.regex(r.body.Err, /kubectl get nodeipallocation/);
});

test('the gateway is Azure\'s (subnet .1), never a pool address; a different --gateway is refused', async (t) => {
  const c = await start(t);
  const pool = await call(c.sock, 'IpamDriver.RequestPool', { AddressSpace: 'azure-vnet-local', Pool: '10.1.0.0/24' });
  const gw = await call(c.sock, 'IpamDriver.RequestAddress', { PoolID: pool.body.PoolID, Options: { RequestAddressType: 'com.docker.network.gateway' } });
  t.deepEqual(gw.body, { Address: '10.1.0.1/24', Data: {} });
  t.deepEqual(c.pool.calls, [], 'no pool address used for the gateway');
  const same = await call(c.sock, 'IpamDriver.RequestAddress', { PoolID: pool.body.PoolID, Address: '10.1.0.1', Options: { RequestAddressType: 'com.docker.network.gateway' } });
  t.is(same.body.Address, '10.1.0.1/24');
  const other = await call(c.sock, 'IpamDriver.RequestAddress', { PoolID: pool.body.PoolID, Address: '10.1.0.254', Options: { RequestAddressType: 'com.docker.network.gateway' } });
  t.regex(other.body.Err, /--gateway=10\.1\.0\.254 is not Azure's gateway.*10\.1\.0\.1/);
  const rel = await call(c.sock, 'IpamDriver.ReleaseAddress', { PoolID: pool.body.PoolID, Address: '10.1.0.1' });
  t.deepEqual(rel.body, {});
  t.deepEqual(c.pool.calls, []);
});

test('a container goes through RequestAddress, CreateEndpoint, Join, Leave, DeleteEndpoint, ReleaseAddress', async (t) => {
  const c = await start(t);
  const poolId = await createNetwork(c);
  t.deepEqual(c.log, ['ensureNode podvnet0']);

  const addr = await call(c.sock, 'IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: null });
  t.deepEqual(addr.body, { Address: '10.1.0.10/24', Data: {} });
  const [ownerKey] = [...c.pool.held.keys()];
  t.regex(ownerKey!, /^cnm-[0-9a-f]{24}\/pvd[0-9a-f]{11}$/);
  const owner = ownerKey!.split('/')[0]!;

  const ep = await call(c.sock, 'NetworkDriver.CreateEndpoint', {
    NetworkID: NET_ID, EndpointID: EP_ID, Options: {}, Interface: { Address: '10.1.0.10/24', AddressIPv6: '', MacAddress: '' },
  });
  t.is(ep.status, 200);
  t.deepEqual(ep.body, {});

  const joined = await call(c.sock, 'NetworkDriver.Join', { NetworkID: NET_ID, EndpointID: EP_ID, SandboxKey: '/var/run/docker/netns/abc', Options: {} });
  t.deepEqual(joined.body, { InterfaceName: { SrcName: 'pvdtest', DstPrefix: 'eth' }, Gateway: '10.1.0.1', StaticRoutes: [], DisableGatewayService: true });
  t.true(c.log.includes(`create ${owner} 10.1.0.10/24`), 'the veth is made for the lease owner');

  const info = await call(c.sock, 'NetworkDriver.EndpointOperInfo', { NetworkID: NET_ID, EndpointID: EP_ID });
  t.deepEqual(info.body.Value, { ip: '10.1.0.10/24', mac: '02:00:00:00:00:01', hostVeth: 'pvhtest', addressOwner: owner });
  t.deepEqual((await call(c.sock, 'NetworkDriver.ProgramExternalConnectivity', { NetworkID: NET_ID, EndpointID: EP_ID, Options: {} })).body, {});
  t.deepEqual((await call(c.sock, 'NetworkDriver.RevokeExternalConnectivity', { NetworkID: NET_ID, EndpointID: EP_ID })).body, {});
  t.deepEqual((await call(c.sock, 'NetworkDriver.Leave', { NetworkID: NET_ID, EndpointID: EP_ID })).body, {});
  t.deepEqual((await call(c.sock, 'NetworkDriver.DeleteEndpoint', { NetworkID: NET_ID, EndpointID: EP_ID })).body, {});
  t.true(c.log.includes(`remove ${owner} 10.1.0.10`));
  t.deepEqual((await call(c.sock, 'NetworkDriver.DeleteEndpoint', { NetworkID: NET_ID, EndpointID: EP_ID })).body, {}, 'idempotent');

  t.deepEqual((await call(c.sock, 'IpamDriver.ReleaseAddress', { PoolID: poolId, Address: '10.1.0.10' })).body, {});
  t.is(c.pool.held.size, 0, 'the address went back to the agent');
  t.deepEqual((await call(c.sock, 'IpamDriver.ReleaseAddress', { PoolID: poolId, Address: '10.1.0.10' })).body, {}, 'idempotent');
  t.deepEqual((await call(c.sock, 'NetworkDriver.DeleteNetwork', { NetworkID: NET_ID })).body, {});
  t.deepEqual((await call(c.sock, 'IpamDriver.ReleasePool', { PoolID: poolId })).body, {});
  const state = JSON.parse(readFileSync(join(c.dir, 'state', STATE_FILE), 'utf8'));
  t.deepEqual(state, { version: 1, pools: {}, leases: {}, networks: {}, endpoints: {} });
});

test('an empty pool names the subnet, says more IPs are coming and what to check', async (t) => {
  const c = await start(t, { ips: ['10.1.0.10'] });
  const poolId = await createNetwork(c);
  t.is((await call(c.sock, 'IpamDriver.RequestAddress', { PoolID: poolId })).body.Address, '10.1.0.10/24');
  const r = await call(c.sock, 'IpamDriver.RequestAddress', { PoolID: poolId });
  t.is(r.status, 200);
  t.is(r.body.Address, undefined);
  t.regex(r.body.Err, /no free IP for this container/);
  t.is(r.body.Error, r.body.Err, 'libnetwork\'s IPAM client reads "Error"');
  t.regex(r.body.Err, /subnet 10\.1\.0\.0\/24/);
  t.regex(r.body.Err, /node test-node: all 1 IPs of its pool are in use/, 'the agent\'s own words (node name) are kept');
  t.regex(r.body.Err, /controller adds IPs .* retry/);
  t.regex(r.body.Err, /NodeIPPool's max IPs per node/);
  const state = JSON.parse(readFileSync(join(c.dir, 'state', STATE_FILE), 'utf8'));
  t.is(Object.keys(state.leases).length, 1, 'the failed request left no lease behind');
});

test('only the agent\'s own error classes get the pool answers: an error that merely shares their name is passed on as it is', async (t) => {
  // Another module's classes with the agent's names (what name matching would have mistaken for them).
  class NoFreeAddressError extends Error {
    override name = 'NoFreeAddressError';
  }
  class PoolNotReadyError extends Error {
    override name = 'PoolNotReadyError';
  }
  for (const impostor of [new NoFreeAddressError('disk quota exceeded'), new PoolNotReadyError('socket closed')]) {
    const base = fixedPoolAddressService({ node: NODE, ips: ['10.1.0.10'] });
    const c = await start(t, { pool: { ...base, acquire: async () => Promise.reject(impostor) } });
    const poolId = await createNetwork(c);
    const r = await call(c.sock, 'IpamDriver.RequestAddress', { PoolID: poolId });
    t.is(r.body.Address, undefined);
    t.regex(r.body.Err, new RegExp(impostor.message), 'the error itself is reported');
    t.notRegex(r.body.Err, /no free IP for this container/, `${impostor.name} from elsewhere is not "pool empty"`);
    t.notRegex(r.body.Err, /^azure-vnet: socket closed/, `${impostor.name} from elsewhere is not "pool not ready"`);
  }
  // The agent's classes (node-plugin/errors.ts) are recognised, whatever their message says.
  const base = fixedPoolAddressService({ node: NODE, ips: ['10.1.0.10'] });
  const c = await start(t, { pool: { ...base, acquire: async () => Promise.reject(new AgentNoFreeAddressError('pool of node n1 exhausted')) } });
  const r = await call(c.sock, 'IpamDriver.RequestAddress', { PoolID: await createNetwork(c) });
  t.regex(r.body.Err, /no free IP for this container/);
  const c2 = await start(t, { pool: { ...base, acquire: async () => Promise.reject(new AgentPoolNotReadyError('record has no status')) } });
  const r2 = await call(c2.sock, 'IpamDriver.RequestAddress', { PoolID: await createNetwork(c2) });
  t.regex(r2.body.Err, /^azure-vnet: record has no status/);
});

test('a preferred container address (--ip) is refused with the reason', async (t) => {
  const c = await start(t);
  const poolId = await createNetwork(c);
  const r = await call(c.sock, 'IpamDriver.RequestAddress', { PoolID: poolId, Address: '10.1.0.50', Options: {} });
  t.regex(r.body.Err, /chosen address \(10\.1\.0\.50.*not supported/);
  t.deepEqual(c.pool.calls, []);
});

test('CreateNetwork refuses subnets other than the pod subnet, IPv6 and foreign gateways', async (t) => {
  const c = await start(t);
  const other = await call(c.sock, 'NetworkDriver.CreateNetwork', { NetworkID: NET_ID, IPv4Data: [{ AddressSpace: 'azure-vnet-local', Pool: '172.18.0.0/16', Gateway: '172.18.0.1/16' }] });
  t.regex(other.body.Err, /172\.18\.0\.0\/16 is not this node's pod subnet 10\.1\.0\.0\/24: use --ipam-driver=azure-vnet/);
  const v6 = await call(c.sock, 'NetworkDriver.CreateNetwork', { NetworkID: NET_ID, IPv4Data: [{ Pool: '10.1.0.0/24' }], IPv6Data: [{ Pool: 'fd00::/64' }] });
  t.regex(v6.body.Err, /IPv6 is not supported/);
  const gw = await call(c.sock, 'NetworkDriver.CreateNetwork', { NetworkID: NET_ID, IPv4Data: [{ Pool: '10.1.0.0/24', Gateway: '10.1.0.254/24' }] });
  t.regex(gw.body.Err, /gateway 10\.1\.0\.254 is not Azure's gateway 10\.1\.0\.1/);
  const defaultIpam = await call(c.sock, 'NetworkDriver.CreateNetwork', { NetworkID: NET_ID, IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: '10.1.0.0/24', Gateway: '10.1.0.1/24' }] });
  t.regex(defaultIpam.body.Err, /addresses come from another IPAM driver \(address space LocalDefault\).*--ipam-driver=azure-vnet/);
  const none = await call(c.sock, 'NetworkDriver.CreateNetwork', { NetworkID: NET_ID, IPv4Data: null });
  t.regex(none.body.Err, /exactly one IPv4 subnet/);
  t.deepEqual(c.log, [], 'nothing was set up');
});

test('CreateEndpoint refuses addresses that did not come from the azure-vnet IPAM, and unknown networks', async (t) => {
  const c = await start(t);
  await createNetwork(c);
  const foreign = await call(c.sock, 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: EP_ID, Interface: { Address: '10.1.0.99/24' } });
  t.regex(foreign.body.Err, /10\.1\.0\.99 was not handed out by the azure-vnet IPAM driver/);
  const outside = await call(c.sock, 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: EP_ID, Interface: { Address: '10.9.0.9/24' } });
  t.regex(outside.body.Err, /not in the network's subnet 10\.1\.0\.0\/24/);
  const ports = await call(c.sock, 'NetworkDriver.CreateEndpoint', {
    NetworkID: NET_ID, EndpointID: EP_ID, Interface: { Address: '10.1.0.10/24' },
    Options: { 'com.docker.network.portmap': [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080 }] },
  });
  t.regex(ports.body.Err, /publishing ports \(-p\/-P\) is not supported: the container has its own VNet address \(10\.1\.0\.10\)/);
  const noaddr = await call(c.sock, 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: EP_ID, Interface: null });
  t.regex(noaddr.body.Err, /no IPv4 address/);
  const unknown = await call(c.sock, 'NetworkDriver.CreateEndpoint', { NetworkID: 'c'.repeat(64), EndpointID: EP_ID, Interface: { Address: '10.1.0.10/24' } });
  t.regex(unknown.body.Err, /unknown network c{64}/);
  const joined = await call(c.sock, 'NetworkDriver.Join', { NetworkID: NET_ID, EndpointID: 'd'.repeat(64), SandboxKey: '/x' });
  t.regex(joined.body.Err, /unknown endpoint d{64}/);
});

test('malformed requests get HTTP 400 with the field named; unknown methods 404; GET 405', async (t) => {
  const c = await start(t);
  const notJson = await call(c.sock, 'NetworkDriver.CreateNetwork', undefined, { raw: '{"NetworkID":' });
  t.is(notJson.status, 400);
  t.regex(notJson.body.Err, /CreateNetwork: request body is not JSON/);
  const missing = await call(c.sock, 'NetworkDriver.CreateNetwork', { IPv4Data: [] });
  t.is(missing.status, 400);
  t.regex(missing.body.Err, /NetworkID/);
  const wrongType = await call(c.sock, 'IpamDriver.RequestPool', { AddressSpace: 'x', V6: 'yes' });
  t.is(wrongType.status, 400);
  t.regex(wrongType.body.Err, /V6/);
  const badAddr = await call(c.sock, 'IpamDriver.ReleaseAddress', { PoolID: 'p', Address: '10.1.0' });
  t.is(badAddr.status, 400);
  t.regex(badAddr.body.Err, /Address: must be an IPv4 address/);
  const badIface = await call(c.sock, 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: EP_ID, Interface: { Address: '10.1.0.10' } });
  t.is(badIface.status, 400);
  t.regex(badIface.body.Err, /Interface\.Address/);
  const badSandbox = await call(c.sock, 'NetworkDriver.Join', { NetworkID: NET_ID, EndpointID: EP_ID, SandboxKey: 'relative' });
  t.regex(badSandbox.body.Err, /SandboxKey: must be an absolute path/);
  const arr = await call(c.sock, 'NetworkDriver.DeleteNetwork', [1, 2]);
  t.is(arr.status, 400);
  const unknown = await call(c.sock, 'NetworkDriver.Frobnicate', {});
  t.is(unknown.status, 404);
  t.regex(unknown.body, /404 page not found/);
  const get = await call(c.sock, 'Plugin.Activate', undefined, { verb: 'GET' });
  t.is(get.status, 405);
  t.is(c.pool.calls.length, 0);
});

test('state survives a restart: endpoints and leases are still known, and released to the right owner', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cnm-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pool = fixedPoolAddressService({ node: NODE, ips: ['10.1.0.10', '10.1.0.11'] });
  const first = await start(t, { dir, pool });
  const poolId = await createNetwork(first);
  await call(first.sock, 'IpamDriver.RequestAddress', { PoolID: poolId });
  await call(first.sock, 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: EP_ID, Interface: { Address: '10.1.0.10/24' } });
  await first.server.shutdown();

  const second = await start(t, { dir, pool });
  const info = await call(second.sock, 'NetworkDriver.EndpointOperInfo', { NetworkID: NET_ID, EndpointID: EP_ID });
  t.is(info.body.Value.ip, '10.1.0.10/24');
  const joined = await call(second.sock, 'NetworkDriver.Join', { NetworkID: NET_ID, EndpointID: EP_ID, SandboxKey: '/var/run/docker/netns/x' });
  t.is(joined.body.Gateway, '10.1.0.1', 'the network is still known');
  await call(second.sock, 'NetworkDriver.DeleteEndpoint', { NetworkID: NET_ID, EndpointID: EP_ID });
  await call(second.sock, 'IpamDriver.ReleaseAddress', { PoolID: poolId, Address: '10.1.0.10' });
  t.is(pool.held.size, 0);
});

test('after a crash mid-request, an address the agent handed out but docker never got is given back', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cnm-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pool = fixedPoolAddressService({ node: NODE, ips: ['10.1.0.10', '10.1.0.11', '10.1.0.12'] });
  // The driver wrote the lease, asked the agent (which recorded 10.1.0.10), then died before answering.
  await pool.acquire({ containerId: 'cnm-interrupted', ifName: dockerIfName('cnm-interrupted'), runtime: 'cnm' });
  // Another lease was released by the agent just before a crash, before the driver dropped its record.
  // A third is in use by an endpoint and must stay.
  await pool.acquire({ containerId: 'cnm-inuse', ifName: dockerIfName('cnm-inuse'), runtime: 'cnm' });
  const poolId = 'azure-vnet-local/10.1.0.0/24';
  const stateDir = join(dir, 'state');
  rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true });
  writeFileSync(join(stateDir, STATE_FILE), JSON.stringify({
    version: 1,
    pools: { [poolId]: { pool: '10.1.0.0/24', refs: 1 } },
    leases: {
      'cnm-interrupted': { poolId, since: 1 },
      'cnm-released': { poolId, since: 1, ip: '10.1.0.200', prefixLength: 24 },
      'cnm-inuse': { poolId, since: 1, ip: '10.1.0.11', prefixLength: 24 },
    },
    networks: { [NET_ID]: { pool: '10.1.0.0/24', gateway: '10.1.0.1', prefixLength: 24 } },
    endpoints: { [EP_ID]: { networkId: NET_ID, ip: '10.1.0.11', prefixLength: 24, owner: 'cnm-inuse', mac: '' } },
  }));
  // The agent has not received its record yet: it cannot vouch for any address, so nothing is judged.
  pool.setNode(undefined);
  const c = await start(t, { dir, pool });
  await c.server.cnm.whenReady();
  t.true(pool.held.has(`cnm-interrupted/${dockerIfName('cnm-interrupted')}`), 'nothing released before the agent is ready');
  t.is(Object.keys(JSON.parse(readFileSync(join(stateDir, STATE_FILE), 'utf8')).leases).length, 3);
  pool.setNode(NODE);
  await call(c.sock, 'Plugin.Activate');
  await c.server.cnm.whenReady();
  t.false(pool.held.has(`cnm-interrupted/${dockerIfName('cnm-interrupted')}`), 'the interrupted acquire was released');
  t.true(pool.held.has(`cnm-inuse/${dockerIfName('cnm-inuse')}`));
  const state = JSON.parse(readFileSync(join(stateDir, STATE_FILE), 'utf8'));
  t.deepEqual(Object.keys(state.leases), ['cnm-inuse']);
});

test('one driver per state dir; a corrupt state file is refused, not silently reset', async (t) => {
  const c = await start(t);
  const again = () => createCnmServer({
    addresses: c.pool, datapath: fakeDatapath([]), logger: pino({ level: 'silent' }), stateDir: join(c.dir, 'state'),
  });
  t.throws(again, { message: /CNM state dir is in use: .*cnm\.lock is held by process \d+/ });

  // A lock left by a process that is gone, or by a PID that now belongs to another process (after a
  // reboot), is taken over.
  for (const content of ['999999999 12345\n', `1 not-the-start-time-of-pid-1\n`]) {
    const stale = mkdtempSync(join(tmpdir(), 'cnm-test-'));
    t.teardown(() => rmSync(stale, { recursive: true, force: true }));
    writeFileSync(join(stale, 'cnm.lock'), content);
    const s = createCnmServer({ addresses: c.pool, datapath: fakeDatapath([]), logger: pino({ level: 'silent' }), stateDir: stale, dockerVeths: fakeVeths([]) });
    await s.shutdown();
    t.pass(`took over a lock with ${content.trim()}`);
  }

  const dir = mkdtempSync(join(tmpdir(), 'cnm-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, `${STATE_FILE}.tmp-99999`), 'half a write');
  createCnmServer({ addresses: c.pool, datapath: fakeDatapath([]), logger: pino({ level: 'silent' }), stateDir: dir, dockerVeths: fakeVeths([]) }).emit('close');
  await new Promise((r) => setTimeout(r, 50));
  t.deepEqual(readdirSync(dir).filter((n) => n.includes('.tmp-')), [], 'an interrupted write\'s temp file is removed');
  writeFileSync(join(dir, STATE_FILE), '{"version": 1, "pools": ');
  t.throws(() => createCnmServer({ addresses: c.pool, datapath: fakeDatapath([]), logger: pino({ level: 'silent' }), stateDir: dir }), {
    message: /CNM state file .* is not JSON/,
  });
  writeFileSync(join(dir, STATE_FILE), JSON.stringify({ version: 1, pools: {}, leases: { x: { poolId: 'p' } }, networks: {}, endpoints: {} }));
  t.throws(() => createCnmServer({ addresses: c.pool, datapath: fakeDatapath([]), logger: pino({ level: 'silent' }), stateDir: dir }), {
    message: /CNM state file .* is invalid: leases\.x\.since/,
  });
});

test('concurrent address requests get distinct addresses and every lease is recorded', async (t) => {
  const ips = Array.from({ length: 40 }, (_, i) => `10.1.0.${10 + i}`);
  const c = await start(t, { ips });
  const poolId = await createNetwork(c);
  const answers = await Promise.all(ips.map(() => call(c.sock, 'IpamDriver.RequestAddress', { PoolID: poolId })));
  const got = answers.map((a) => a.body.Address);
  t.is(new Set(got).size, ips.length);
  const state = JSON.parse(readFileSync(join(c.dir, 'state', STATE_FILE), 'utf8'));
  t.deepEqual(Object.values(state.leases).map((l: any) => `${l.ip}/24`).sort(), [...got].sort());
});

test('any JSON body for any method gets a protocol answer (200 or 400 with Err), never a crash', async (t) => {
  const c = await start(t, { ips: Array.from({ length: 20 }, (_, i) => `10.1.0.${10 + i}`) });
  const { METHODS } = await import('./protocol.js');
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...METHODS), fc.oneof(fc.json(), fc.string()), async (method, raw) => {
      const r = await call(c.sock, method, undefined, { raw });
      if (r.status === 400) return typeof r.body.Err === 'string' && r.body.Err.includes(method);
      return r.status === 200 && typeof r.body === 'object' && r.body !== null && (r.body.Err === undefined || typeof r.body.Err === 'string');
    }),
    { numRuns: 300 },
  );
  const big = await call(c.sock, 'NetworkDriver.CreateNetwork', undefined, { raw: `{"NetworkID":"${'a'.repeat(2 << 20)}"}` });
  t.is(big.status, 413);
  t.regex(big.body.Err, /larger than/);
});

test('the plugin spec file points dockerd at the socket; bad names and relative paths are refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cnm-spec-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = await writePluginSpec({ socketPath: '/run/podvnet/cnm.sock', specDir: dir });
  t.is(path, join(dir, 'azure-vnet.spec'));
  t.is(readFileSync(path, 'utf8'), 'unix:///run/podvnet/cnm.sock\n');
  await t.throwsAsync(writePluginSpec({ socketPath: 'relative.sock', specDir: dir }), { message: /must be absolute/ });
  await t.throwsAsync(writePluginSpec({ socketPath: '/x.sock', name: '../evil', specDir: dir }), { message: /plugin name/ });
  await removePluginSpec({ specDir: dir });
  t.deepEqual(readdirSync(dir), []);
  await removePluginSpec({ specDir: dir }); // idempotent
});

test('random container lifecycles with driver restarts: addresses never shared, nothing leaked', async (t) => {
  const ips = ['10.1.0.10', '10.1.0.11', '10.1.0.12', '10.1.0.13'];
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom('add', 'add', 'remove', 'restart'), fc.nat()), { maxLength: 25 }), async (ops) => {
      const dir = mkdtempSync(join(tmpdir(), 'cnm-prop-'));
      const pool = fixedPoolAddressService({ node: NODE, ips });
      const servers: CnmServer[] = [];
      const open = async () => {
        const s = createCnmServer({ addresses: pool, datapath: fakeDatapath([]), logger: pino({ level: 'silent' }), stateDir: join(dir, 'state'), dockerVeths: fakeVeths([]) });
        const sock = join(dir, `p${servers.length}.sock`);
        await listenOnSocket(s, sock);
        servers.push(s);
        return sock;
      };
      try {
        let sock = await open();
        const poolRes = await call(sock, 'IpamDriver.RequestPool', { AddressSpace: 'azure-vnet-local', Pool: '10.1.0.0/24' });
        const poolId = poolRes.body.PoolID as string;
        await call(sock, 'NetworkDriver.CreateNetwork', { NetworkID: NET_ID, IPv4Data: [{ AddressSpace: 'azure-vnet-local', Pool: '10.1.0.0/24', Gateway: '10.1.0.1/24' }] });
        const live = new Map<string, string>(); // endpoint -> ip
        let n = 0;
        for (const [op, pick] of ops) {
          if (op === 'restart') {
            await servers[servers.length - 1]!.shutdown();
            sock = await open();
          } else if (op === 'add') {
            const addr = await call(sock, 'IpamDriver.RequestAddress', { PoolID: poolId });
            if (live.size === ips.length) {
              if (!/no free IP/.test(addr.body.Err ?? '')) return false;
              continue;
            }
            const ep = `e${n++}`.padEnd(12, '0');
            const ip = (addr.body.Address as string).split('/')[0]!;
            if ([...live.values()].includes(ip)) return false;
            await call(sock, 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: ep, Interface: { Address: addr.body.Address } });
            const joined = await call(sock, 'NetworkDriver.Join', { NetworkID: NET_ID, EndpointID: ep, SandboxKey: '/run/netns/x' });
            if (joined.body.Gateway !== '10.1.0.1') return false;
            live.set(ep, ip);
          } else if (live.size > 0) {
            const [ep, ip] = [...live.entries()][pick % live.size]!;
            await call(sock, 'NetworkDriver.Leave', { NetworkID: NET_ID, EndpointID: ep });
            await call(sock, 'NetworkDriver.DeleteEndpoint', { NetworkID: NET_ID, EndpointID: ep });
            await call(sock, 'IpamDriver.ReleaseAddress', { PoolID: poolId, Address: ip });
            live.delete(ep);
          }
          const state = JSON.parse(readFileSync(join(dir, 'state', STATE_FILE), 'utf8'));
          const heldIPs = [...pool.held.values()].sort();
          if (heldIPs.join() !== [...live.values()].sort().join()) return false;
          if (Object.keys(state.endpoints).length !== live.size || Object.keys(state.leases).length !== live.size) return false;
        }
        return true;
      } finally {
        await servers[servers.length - 1]?.shutdown();
        rmSync(dir, { recursive: true, force: true });
      }
    }),
    { numRuns: 15 },
  );
  t.pass();
});

test('after the state file is lost, docker\'s ReleaseAddress still frees an address found on one of our veths', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cnm-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pool = fixedPoolAddressService({ node: NODE, ips: ['10.1.0.10', '10.1.0.11'] });
  const owner = 'cnm-0123456789abcdef01234567';
  await pool.acquire({ containerId: owner, ifName: dockerIfName(owner), runtime: 'cnm' });
  await pool.acquire({ containerId: 'cni-pod', ifName: 'eth0', runtime: 'cni' });
  const log: string[] = [];
  const attachments = [
    { hostVeth: 'pvnaaaa', containerId: owner, ifName: dockerIfName(owner), ip: '10.1.0.10' },
    { hostVeth: 'pvnbbbb', containerId: 'cni-pod', ifName: 'eth0', ip: '10.1.0.11' },
  ];
  const server = createCnmServer({ addresses: pool, datapath: fakeDatapath(log, attachments), logger: pino({ level: 'silent' }), stateDir: join(dir, 'fresh-state'), dockerVeths: fakeVeths(log) });
  const sock = join(dir, 'p.sock');
  await listenOnSocket(server, sock);
  t.teardown(() => server.shutdown());
  t.deepEqual((await call(sock, 'IpamDriver.ReleaseAddress', { PoolID: 'azure-vnet-local/10.1.0.0/24', Address: '10.1.0.10' })).body, {});
  t.deepEqual(log, [`detachPod ${owner}`]);
  t.false(pool.held.has(`${owner}/${dockerIfName(owner)}`), 'the agent got it back');
  // A CNI pod's address is never touched by the Docker driver.
  await call(sock, 'IpamDriver.ReleaseAddress', { PoolID: 'azure-vnet-local/10.1.0.0/24', Address: '10.1.0.11' });
  t.true(pool.held.has('cni-pod/eth0'));
  t.deepEqual(log, [`detachPod ${owner}`]);
});

test('a lease no endpoint ever used is given back after a while, only in pools no other driver uses', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cnm-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  let clock = 1_000_000_000;
  const pool = fixedPoolAddressService({ node: NODE, ips: ['10.1.0.10', '10.1.0.11', '10.1.0.12'] });
  const server = createCnmServer({
    addresses: pool, datapath: fakeDatapath([]), logger: pino({ level: 'silent' }), stateDir: join(dir, 'state'),
    dockerVeths: fakeVeths([]), now: () => clock,
  });
  const sock = join(dir, 'p.sock');
  await listenOnSocket(server, sock);
  t.teardown(() => server.shutdown());
  const c = { dir, sock, pool, log: [], server } as Ctx;
  const poolId = await createNetwork(c);
  // One address used by an endpoint, one whose CreateEndpoint never came (dockerd died in between).
  await call(sock, 'IpamDriver.RequestAddress', { PoolID: poolId });
  await call(sock, 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: EP_ID, Interface: { Address: '10.1.0.10/24' } });
  await call(sock, 'IpamDriver.RequestAddress', { PoolID: poolId });
  t.is(pool.held.size, 2);
  clock += 2 * 60_000;
  await call(sock, 'Plugin.Activate');
  t.is(pool.held.size, 2, 'a young unbound lease is left alone');
  clock += 4 * 60_000;
  await call(sock, 'Plugin.Activate');
  t.deepEqual([...pool.held.values()], ['10.1.0.10'], 'the lost one is given back, the used one kept');

  // A second RequestPool on the same subnet without a network of ours: another driver may use the pool.
  await call(sock, 'IpamDriver.RequestPool', { AddressSpace: 'azure-vnet-local', Pool: '10.1.0.0/24' });
  await call(sock, 'IpamDriver.RequestAddress', { PoolID: poolId });
  clock += 10 * 60_000;
  await call(sock, 'Plugin.Activate');
  t.is(pool.held.size, 2, 'kept: its endpoint may belong to another network driver');
});
