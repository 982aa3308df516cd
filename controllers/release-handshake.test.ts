import test from 'ava';
import fc from 'fast-check';
import { hasChanges, isOurs, planNode, type IpConfigView } from './plan.js';

/**
 * The release handshake played out over rounds, with Azure's real habit of giving a new Dynamic ip-config
 * the lowest free address, which is often one just freed. The agent releases IPs it will not hand out and
 * drops them from its list once they are gone from the NIC. Whatever the order of events, the node must
 * settle (no write forever) and no ip-config holding an unreleased IP may be removed.
 */

const SUBNET = '/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/virtualNetworks/v/subnets/pods';
const spec = { subnetID: SUBNET, ipsPerNode: { min: 0, max: 64 }, scaling: { batchSize: 8, requestThresholdPercent: 50, releaseThresholdPercent: 150 } };

class World {
  nic: Array<IpConfigView & { privateIPAddress: string }> = [{ name: 'ipconfig1', primary: true, privateIPAddress: '10.0.0.4', subnetId: SUBNET }];
  released = new Set<string>();
  writes = 0;
  private taken = new Set<number>([4]);

  constructor(secondaries: number) {
    this.apply({ add: Array.from({ length: secondaries }, (_, i) => `podvnet-${i + 1}`), remove: [] });
  }

  /** One NIC PUT as Azure does it: removed addresses are freed first, new Dynamic ones take the lowest free. */
  apply(change: { add: string[]; remove: string[] }): void {
    this.writes++;
    const removing = new Set(change.remove);
    for (const c of this.nic) if (removing.has(c.name)) this.taken.delete(Number(c.privateIPAddress.split('.')[3]));
    this.nic = this.nic.filter((c) => !removing.has(c.name));
    for (const name of change.add) {
      let n = 5;
      while (this.taken.has(n)) n++;
      this.taken.add(n);
      this.nic.push({ name, primary: false, privateIPAddress: `10.0.0.${n}`, subnetId: SUBNET });
    }
  }

  /** The agent's side: releases leave its list once gone from the NIC. */
  agentSync(): void {
    const onNic = new Set(this.nic.map((c) => c.privateIPAddress));
    for (const ip of this.released) if (!onNic.has(ip)) this.released.delete(ip);
  }

  /** One controller round; returns whether it wrote. Fails the test if it removes an unreleased IP. */
  round(t: { true(v: boolean, m?: string): void }, demand: { usedIPs: number; pendingIPs: number }): boolean {
    const plan = planNode({ spec, nic: this.nic, released: [...this.released], demand });
    for (const name of plan.remove) {
      const ip = this.nic.find((c) => c.name === name)!.privateIPAddress;
      t.true(this.released.has(ip), `removed ${name} (${ip}), which the agent never released`);
    }
    if (!hasChanges(plan)) return false;
    this.apply(plan);
    return true;
  }
}

test('releases racing new demand: Azure hands a freed address straight back, and the node still settles', (t) => {
  const w = new World(8); // 10.0.0.5 .. 10.0.0.12
  for (const ip of ['10.0.0.9', '10.0.0.10', '10.0.0.11', '10.0.0.12']) w.released.add(ip);
  const demand = { usedIPs: 4, pendingIPs: 8 }; // pods arrived after the agent released
  let quiet = 0;
  for (let i = 0; i < 20 && quiet < 3; i++) {
    const wrote = w.round(t, demand);
    w.agentSync();
    quiet = wrote ? 0 : quiet + 1;
  }
  t.is(quiet, 3, `still writing after 20 rounds (${w.writes} writes)`);
  t.true(w.writes <= 1 + 2, `${w.writes} writes: the removal and the growth, not a loop`);
  const usable = w.nic.filter((c) => isOurs(c) && !w.released.has(c.privateIPAddress)).length;
  t.true(usable >= 12, `the node holds what the demand needs (${usable})`);
});

test('property: whatever the agent releases and whatever the demand, rounds settle and never remove an unreleased IP', (t) => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 24 }),
    fc.array(fc.boolean(), { minLength: 24, maxLength: 24 }),
    fc.integer({ min: 0, max: 40 }),
    fc.integer({ min: 0, max: 16 }),
    fc.boolean(),
    (secondaries, releaseMask, used, pending, agentFirst) => {
      const w = new World(secondaries);
      w.nic.filter(isOurs).forEach((c, i) => { if (releaseMask[i]) w.released.add(c.privateIPAddress); });
      let quiet = 0;
      let ok = true;
      const check = { true: (v: boolean) => { if (!v) ok = false; } };
      for (let i = 0; i < 30 && quiet < 3; i++) {
        if (agentFirst) w.agentSync();
        const wrote = w.round(check, { usedIPs: Math.min(used, 64), pendingIPs: pending });
        if (!agentFirst) w.agentSync();
        quiet = wrote ? 0 : quiet + 1;
      }
      return ok && quiet === 3;
    },
  ));
  t.pass();
});
