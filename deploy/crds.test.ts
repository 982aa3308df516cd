import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { renderCRDs } from '../crds/generate.js';
import { build, REPO_ROOT } from './testing/manifests.js';
import { crdFileNames, CRD_COPY_DIR, expectedCopy, staleCopies } from './sync-crds.js';

test('deploy/base/crds holds exact copies of crds/*.yaml (run deploy/sync-crds.ts if this fails)', (t) => {
  t.deepEqual(staleCopies(), []);
  for (const file of crdFileNames()) t.is(readFileSync(join(CRD_COPY_DIR, file), 'utf8'), expectedCopy(file));
});

test('the copies match what the zod schemas generate today, not just the committed crds/ files', (t) => {
  for (const [file, text] of renderCRDs()) {
    t.deepEqual(parse(readFileSync(join(CRD_COPY_DIR, file), 'utf8')), parse(text), file);
  }
});

test('the base kustomization lists every CRD copy and the build carries them unchanged', (t) => {
  const kustomization = parse(readFileSync(join(REPO_ROOT, 'deploy/base/kustomization.yaml'), 'utf8'));
  for (const file of crdFileNames()) t.true(kustomization.resources.includes(`crds/${file}`), file);
  const built = build('deploy/base').filter((o) => o.kind === 'CustomResourceDefinition');
  for (const file of crdFileNames()) {
    const source = parse(readFileSync(join(REPO_ROOT, 'crds', file), 'utf8'));
    const out = built.find((o) => o.metadata.name === source.metadata.name);
    t.truthy(out, file);
    // The only change kustomize makes is the common label, which the source already has.
    t.deepEqual(out, source);
  }
});
