// NIC writes as plain state transitions, checked against invariants over random sequences.
import test from 'ava';
import fc from 'fast-check';
import { AzureError } from './errors.js';
import { EmulatorState, ids, type DesiredIpConfig } from './state.js';

const SUB = '00000000-0000-0000-0000-000000000001';

function world() {
  const st = new EmulatorState({ maxIpConfigsPerNic: 8, allowMultipleSubnetsPerNic: false });
  const vnet = st.createVnet(SUB, 'rg', 'v', 'eastus', ['10.0.0.0/16'], [{ name: 'a', addressPrefix: '10.0.0.0/27' }, { name: 'b', addressPrefix: '10.0.1.0/28' }]);
  return { st, subnets: [...vnet.subnets.values()] };
}

const cfgArb = fc.record({
  name: fc.constantFrom('p', 'q', 'r', 's', 't', 'u'),
  static: fc.option(fc.integer({ min: 0, max: 40 }), { nil: undefined }),
});
const putArb = fc.record({
  nic: fc.constantFrom('n1', 'n2', 'n3'),
  subnet: fc.constantFrom(0, 1),
  cfgs: fc.array(cfgArb, { minLength: 1, maxLength: 9 }),
});

test('random NIC writes keep every invariant: unique addresses, pool accounting, stable Dynamic addresses, all-or-nothing', (t) => {
  fc.assert(fc.property(fc.array(putArb, { maxLength: 40 }), (puts) => {
    const { st, subnets } = world();
    for (const put of puts) {
      const subnet = subnets[put.subnet]!;
      const id = ids.nic(SUB, 'rg', put.nic);
      const before = st.nics.get(id.toLowerCase())?.ipConfigs;
      const desired: DesiredIpConfig[] = put.cfgs.map((c, i) => {
        const d: DesiredIpConfig = { name: c.name, allocation: c.static === undefined ? 'Dynamic' : 'Static', subnetId: subnet.id, primary: i === 0 };
        if (c.static !== undefined) d.privateIPAddress = `10.0.${put.subnet}.${c.static}`;
        return d;
      });
      try {
        const { nic } = st.putNic(id, { location: 'eastus', ipConfigs: desired });
        // Dynamic ip-configs that existed before in the same subnet kept their address.
        for (const c of nic.ipConfigs) {
          const old = before?.find((o) => o.name.toLowerCase() === c.name.toLowerCase());
          if (old && c.allocation === 'Dynamic' && old.subnet === c.subnet && old.privateIPAddress !== c.privateIPAddress) return false;
        }
      } catch (e) {
        if (!(e instanceof AzureError)) throw e;
        if (st.nics.get(id.toLowerCase())?.ipConfigs !== before) return false; // nothing changed
      }
      // Invariants over the whole world.
      const seen = new Set<string>();
      let perSubnet = subnets.map(() => 0);
      for (const nic of st.nics.values()) {
        for (const c of nic.ipConfigs) {
          if (seen.has(c.privateIPAddress)) return false;
          seen.add(c.privateIPAddress);
          if (!c.subnet.pool.contains(c.ip) || c.subnet.pool.isReserved(c.ip) || !c.subnet.pool.isTaken(c.ip)) return false;
          perSubnet = perSubnet.map((n, i) => (subnets[i] === c.subnet ? n + 1 : n));
          if (st.ipOwner(c.privateIPAddress)?.nicId !== nic.id) return false;
        }
      }
      if (subnets.some((s, i) => s.pool.used !== perSubnet[i])) return false;
      if (st.ipOwners().length !== seen.size) return false;
    }
    return true;
  }), { numRuns: 400 });
  t.pass();
});

test('Dynamic takes the lowest free address; freed addresses are reused lowest first', (t) => {
  const { st, subnets } = world();
  const a = subnets[0]!;
  const dyn = (name: string, primary = false): DesiredIpConfig => ({ name, allocation: 'Dynamic', subnetId: a.id, primary });
  const n1 = st.putNic(ids.nic(SUB, 'rg', 'n1'), { location: 'eastus', ipConfigs: [dyn('x', true), dyn('y'), dyn('z')] }).nic;
  t.deepEqual(n1.ipConfigs.map((c) => c.privateIPAddress), ['10.0.0.4', '10.0.0.5', '10.0.0.6']);
  st.putNic(n1.id, { location: 'eastus', ipConfigs: [dyn('x', true), dyn('z')] });
  const n2 = st.putNic(ids.nic(SUB, 'rg', 'n2'), { location: 'eastus', ipConfigs: [dyn('m', true), dyn('n')] }).nic;
  t.deepEqual(n2.ipConfigs.map((c) => c.privateIPAddress), ['10.0.0.5', '10.0.0.7']);
});

test('a failed operation restores the previous ip-configs and tells listeners', (t) => {
  const { st, subnets } = world();
  const a = subnets[0]!;
  const events: Array<{ added: string[]; removed: string[] }> = [];
  st.on('ipchange', (ev: { added: string[]; removed: string[] }) => events.push({ added: ev.added, removed: ev.removed }));
  const first = st.putNic(ids.nic(SUB, 'rg', 'n1'), { location: 'eastus', ipConfigs: [{ name: 'x', allocation: 'Dynamic', subnetId: a.id }] });
  const second = st.putNic(first.nic.id, { location: 'eastus', ipConfigs: [{ name: 'x', allocation: 'Dynamic', subnetId: a.id, primary: true }, { name: 'y', allocation: 'Dynamic', subnetId: a.id, primary: false }] });
  st.restoreIpConfigs(second.nic, second.previous);
  t.deepEqual(second.nic.ipConfigs.map((c) => c.name), ['x']);
  t.is(a.pool.used, 1);
  t.deepEqual(events, [{ added: ['10.0.0.4'], removed: [] }, { added: ['10.0.0.5'], removed: [] }, { added: [], removed: ['10.0.0.5'] }]);
});
