import test from 'ava';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { withEmulator } from '../hack/kube-emulator/testing/index.js';
import type { KubeEmulator } from '../hack/kube-emulator/index.js';

/**
 * The same invalid pools that crds/api.test.ts feeds to zod, sent with kubectl to an API server that
 * serves the generated CRDs: the CRD schema (types, bounds, patterns, CEL rules, strict fields) must refuse
 * each with the message the zod schema gives.
 */

const CRDS = ['podvnet.io_nodeippools.yaml', 'podvnet.io_nodeipallocations.yaml'].map((f) => fileURLToPath(new URL(f, import.meta.url)));
const SUBNET = '/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-1/subnets/pods';

interface Run { code: number; stdout: string; stderr: string }
function kubectl(emu: KubeEmulator, args: string[], stdin?: string): Promise<Run> {
  return new Promise((resolve) => {
    const p = execFile('kubectl', ['--kubeconfig', emu.kubeconfigPath, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? 1 : 0, stdout, stderr });
    });
    p.stdin!.end(stdin ?? '');
  });
}

const pool = (name: string, spec: Record<string, unknown>) =>
  stringify({ apiVersion: 'podvnet.io/v1alpha1', kind: 'NodeIPPool', metadata: { name }, spec: { nodeSelector: {}, subnetID: SUBNET, ...spec } });

async function withCRDs(t: Parameters<typeof withEmulator>[0]): Promise<KubeEmulator> {
  const emu = await withEmulator(t);
  const r = await kubectl(emu, ['apply', ...CRDS.flatMap((f) => ['-f', f])]);
  if (r.code !== 0) throw new Error(r.stderr);
  return emu;
}

test('the Kubernetes API emulator fills in every default of a minimal pool, as the API server does', async (t) => {
  const emu = await withCRDs(t);
  const r = await kubectl(emu, ['apply', '-f', '-'], pool('minimal', {}));
  t.is(r.code, 0, r.stderr);
  const got = JSON.parse((await kubectl(emu, ['get', 'nipp', 'minimal', '-o', 'json'])).stdout);
  t.deepEqual(got.spec, {
    nodeSelector: {},
    subnetID: SUBNET,
    allocation: 'Individual',
    ipsPerNode: { min: 0, max: 250 },
    scaling: { batchSize: 16, requestThresholdPercent: 50, releaseThresholdPercent: 150 },
    snat: { enabled: true, excludeCIDRs: [] },
  });
});

test('the CRD schema refuses what zod refuses, with the same messages', async (t) => {
  const emu = await withCRDs(t);
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['min-over-max', { ipsPerNode: { min: 20, max: 10 }, scaling: { batchSize: 4 } }, /spec\.ipsPerNode: Invalid value: "object": min must not exceed max/],
    ['batch-zero', { scaling: { batchSize: 0 } }, /spec\.scaling\.batchSize: Invalid value: 0: spec\.scaling\.batchSize in body should be greater than or equal to 1/],
    ['bad-subnet', { subnetID: SUBNET.replace('Microsoft.Network', 'Microsoft.Compute') }, /spec\.subnetID: Invalid value: ".*": spec\.subnetID in body should match/],
    ['thresholds', { scaling: { requestThresholdPercent: 80, releaseThresholdPercent: 60 } }, /spec\.scaling: Invalid value: "object": releaseThresholdPercent must be greater than requestThresholdPercent/],
    ['batch-too-big', { scaling: { batchSize: 300 } }, /spec\.scaling\.batchSize: Invalid value: 300: spec\.scaling\.batchSize in body should be less than or equal to 250/],
    ['batch-over-max', { ipsPerNode: { max: 8 } }, /spec: Invalid value: "object": scaling\.batchSize must not exceed ipsPerNode\.max/],
    ['selector', { nodeSelector: { matchExpressions: [{ key: 'pool', operator: 'In' }] } }, /In and NotIn need at least one value/],
    ['block-min', { allocation: 'Block', ipsPerNode: { min: 10 } }, /spec: Invalid value: "object": with allocation Block, ipsPerNode\.min counts addresses in whole \/28 blocks: it must be a multiple of 16/],
    ['block-max', { allocation: 'Block', ipsPerNode: { max: 100 } }, /with allocation Block, ipsPerNode\.max counts addresses in whole \/28 blocks: it must be a multiple of 16, or 250/],
    ['block-batch', { allocation: 'Block', scaling: { batchSize: 8 } }, /with allocation Block, scaling\.batchSize counts addresses in whole \/28 blocks/],
    ['block-mode', { allocation: 'Prefix' }, /spec\.allocation: Unsupported value: "Prefix"/],
    ['fallback-individual', { fallbackToIndividual: true }, /fallbackToIndividual applies only to allocation Block/],
  ];
  for (const [name, spec, message] of cases) {
    const r = await kubectl(emu, ['apply', '-f', '-'], pool(name, spec));
    t.not(r.code, 0, `${name} was accepted`);
    t.regex(r.stderr, message, name);
  }
  const unknown = await kubectl(emu, ['apply', '--validate=strict', '-f', '-'], pool('colour', { colour: 'blue' }));
  t.not(unknown.code, 0);
  t.regex(unknown.stderr, /unknown field "spec\.colour"/);
});

test('subnetID is immutable once the pool exists', async (t) => {
  const emu = await withCRDs(t);
  t.is((await kubectl(emu, ['apply', '-f', '-'], pool('fixed', {}))).code, 0);
  const r = await kubectl(emu, ['apply', '-f', '-'], pool('fixed', { subnetID: SUBNET.replace(/pods$/, 'pods2') }));
  t.not(r.code, 0);
  t.regex(r.stderr, /subnetID is immutable: create a new pool for another subnet/);
});

test('allocation is immutable once the pool exists, and a Block pool with whole blocks is accepted', async (t) => {
  const emu = await withCRDs(t);
  t.is((await kubectl(emu, ['apply', '-f', '-'], pool('blocky', { allocation: 'Block', ipsPerNode: { min: 16, max: 240 } }))).code, 0);
  const r = await kubectl(emu, ['apply', '-f', '-'], pool('blocky', { allocation: 'Individual', ipsPerNode: { min: 16, max: 240 } }));
  t.not(r.code, 0);
  t.regex(r.stderr, /allocation is immutable: create a new pool \(on another subnet\) to change the mode/);
  // A pool that does not name its mode is Individual.
  t.is((await kubectl(emu, ['apply', '-f', '-'], pool('plain', {}))).code, 0);
  const got = JSON.parse((await kubectl(emu, ['get', 'nipp', 'plain', '-o', 'json'])).stdout);
  t.is(got.spec.allocation, 'Individual');
});
