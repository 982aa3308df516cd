import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crdFiles } from '../crds/definitions.js';

/**
 * crds/*.yaml (generated from the zod schemas) is the one source of truth for the CRDs. Kustomize may
 * not read files outside its root, so deploy/base/crds/ holds byte-for-byte copies that this script
 * writes; `--check` (and deploy/crds.test.ts) fails when a copy differs from its source.
 * Usage: node --loader ts-node/esm deploy/sync-crds.ts [--check]
 */

const here = dirname(fileURLToPath(import.meta.url));
export const CRD_SOURCE_DIR = join(here, '..', 'crds');
export const CRD_COPY_DIR = join(here, 'base', 'crds');
const COPY_HEADER = '# Copied from crds/ by deploy/sync-crds.ts. Do not edit: edit crds/api/ and regenerate.\n';

export const crdFileNames = (): string[] => crdFiles.map(([file]) => file);

/** The text each copy must have: the source file with one header line in front. */
export function expectedCopy(file: string): string {
  return COPY_HEADER + readFileSync(join(CRD_SOURCE_DIR, file), 'utf8');
}

/** Names of the copies that are missing or differ from their source. */
export function staleCopies(): string[] {
  return crdFileNames().filter((file) => {
    try {
      return readFileSync(join(CRD_COPY_DIR, file), 'utf8') !== expectedCopy(file);
    } catch {
      return true;
    }
  });
}

function main(args: string[]): number {
  if (args.includes('--check')) {
    const stale = staleCopies();
    for (const file of stale) console.error(`deploy/base/crds/${file} is stale: run node --loader ts-node/esm deploy/sync-crds.ts`);
    return stale.length === 0 ? 0 : 1;
  }
  mkdirSync(CRD_COPY_DIR, { recursive: true });
  for (const file of crdFileNames()) {
    writeFileSync(join(CRD_COPY_DIR, file), expectedCopy(file));
    console.log(`wrote deploy/base/crds/${file}`);
  }
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));
