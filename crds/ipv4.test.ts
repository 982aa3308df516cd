import test from 'ava';
import fc from 'fast-check';
import { azureGateway, cidrContains, formatCIDR, intToIp, ipToInt, isAzureReserved, parseCIDR } from './ipv4.js';

test('round-trips every address', (t) => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), (n) => ipToInt(intToIp(n)) === n));
  t.pass();
});

test('rejects what is not an address or a CIDR', (t) => {
  for (const bad of ['1.2.3', '1.2.3.256', '01.2.3.4', 'a.b.c.d', '1.2.3.4.5', '']) t.throws(() => ipToInt(bad), { message: /not an IPv4 address/ });
  for (const bad of ['10.0.0.0', '10.0.0.0/33', '10.0.0.0/', '10.0.0.0/8/8']) t.throws(() => parseCIDR(bad), { message: /not an IPv4 (CIDR|address)/ });
});

test('normalises the network, knows membership, gateway and Azure reservations', (t) => {
  const c = parseCIDR('10.240.7.9/24');
  t.is(formatCIDR(c), '10.240.7.0/24');
  t.true(cidrContains(c, '10.240.7.255'));
  t.false(cidrContains(c, '10.240.8.0'));
  t.is(azureGateway(c), '10.240.7.1');
  t.deepEqual([0, 1, 2, 3, 4, 254, 255].map((i) => isAzureReserved(c, `10.240.7.${i}`)), [true, true, true, true, false, false, true]);
});
