import test from 'ava';
import fc from 'fast-check';
import { intToIp, ipToInt, parseCIDR } from '../../crds/ipv4.js';
import {
  checkPoolOnNode,
  choosePool,
  DriverError,
  gatewayAddress,
  noFreeAddressMessage,
  parsePoolId,
  poolIdFor,
  splitAddress,
} from './pool.js';

const NODE = { podSubnet: '10.1.4.0/22', gatewayIP: '10.1.4.1' };

test('any spelling of the pod subnet (host bits set) maps to the same pool and id', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 1023 }), fc.constantFrom('azure-vnet-local', 'azure-vnet-global', 'tenant-a'), (offset, space) => {
      const spelled = `${intToIp(ipToInt('10.1.4.0') + offset)}/22`;
      const choice = choosePool({ AddressSpace: space, Pool: spelled }, NODE);
      return choice.pool === '10.1.4.0/22' && choice.poolId === poolIdFor(space, '10.1.4.0/22') && parsePoolId(choice.poolId).pool === '10.1.4.0/22';
    }),
  );
  t.pass();
});

test('every other subnet is refused, naming both subnets and the fix', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 8, max: 30 }), (n, len) => {
      const cidr = `${intToIp(n)}/${len}`;
      const c = parseCIDR(cidr);
      if (c.prefixLength === 22 && c.network === parseCIDR(NODE.podSubnet).network) return true;
      try {
        choosePool({ AddressSpace: 'azure-vnet-local', Pool: cidr }, NODE);
        return false;
      } catch (err) {
        return err instanceof DriverError && err.message.includes(`--subnet=${cidr} does not match`) && err.message.includes('use --subnet=10.1.4.0/22');
      }
    }),
  );
  t.pass();
});

test('a pool id survives a round trip; a foreign id is refused', (t) => {
  t.deepEqual(parsePoolId('azure-vnet-local/10.1.4.0/22'), { addressSpace: 'azure-vnet-local', pool: '10.1.4.0/22' });
  t.throws(() => parsePoolId('LocalDefault/172.17.0.0/16/x'), { message: /not handed out by the azure-vnet IPAM driver/ });
});

test('the gateway is the node record\'s, with the pool\'s prefix; a node that moved subnets is reported', (t) => {
  t.is(gatewayAddress('azure-vnet-local/10.1.4.0/22', NODE), '10.1.4.1/22');
  t.throws(() => checkPoolOnNode('azure-vnet-local/10.9.0.0/24', NODE), { message: /no longer this node's pod subnet \(now 10\.1\.4\.0\/22\)/ });
  t.throws(() => checkPoolOnNode('azure-vnet-local/10.1.4.0/22', undefined), { message: /pool is not ready yet/ });
});

test('splitAddress keeps host bits and rejects garbage', (t) => {
  t.deepEqual(splitAddress('10.1.4.9/22'), { ip: '10.1.4.9', prefixLength: 22 });
  t.throws(() => splitAddress('10.1.4.9/40'));
  t.throws(() => splitAddress('10.1.4/22'));
});

test('the exhaustion message adds advice only when the agent did not already give it', (t) => {
  const bare = noFreeAddressMessage({ pool: '10.1.4.0/22', cause: 'node n1: 3 of 3 in use' });
  t.regex(bare, /^azure-vnet: no free IP for this container: every secondary IP in this node's pool \(subnet 10\.1\.4\.0\/22\) is in use \(node n1: 3 of 3 in use\)\./);
  t.regex(bare, /controller adds IPs/);
  t.regex(bare, /ipsPerNode\.max/);
  const advised = noFreeAddressMessage({
    pool: '10.1.4.0/22',
    cause: 'no free VNet IP on node n1: 3 of 3 in use; Retry shortly; if this persists, check the NodeIPPool (ipsPerNode.max).',
  });
  t.is(advised.match(/NodeIPPool/g)?.length, 1, 'said once');
  t.regex(advised, /node n1: 3 of 3 in use/);
});
