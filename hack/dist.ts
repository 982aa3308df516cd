import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The compiled commands (`npm run build`, tsconfig.build.json -> dist/), for the sandbox, the soak and the
 * benchmarks: they run the controller and the agents as production does, not through the TypeScript loader.
 * ensureBuilt() compiles only when a source file that ships is newer than the last build, so a run after an
 * edit never measures or exercises stale JavaScript, and a run without one costs a directory walk.
 */

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(REPO_ROOT, 'dist');
/** Written by every successful build (tsconfig.build.json's tsBuildInfoFile). */
const BUILD_STAMP = path.join(DIST, '.tsbuildinfo');
/** What tsconfig.build.json compiles (its "include"), plus the configs that shape the output. */
const SOURCES = ['crds', 'controllers', 'node-plugin', 'deploy/cni-install'];
const CONFIGS = ['tsconfig.json', 'tsconfig.build.json', 'package.json'];

/** The shipped commands, as the image runs them (deploy/base sets the same paths under /app). */
export const DIST_COMMANDS = {
  controller: 'controllers/main.js',
  agent: 'node-plugin/agent/main.js',
  cniInstaller: 'deploy/cni-install/main.js',
} as const;

export const distPath = (command: keyof typeof DIST_COMMANDS): string => path.join(DIST, DIST_COMMANDS[command]);

/** The node flags (V8's) of the agent's command in deploy/base/node/daemonset.yaml, read from there: benchmarks run it as production does. */
export function agentNodeFlags(): string[] {
  const m = /command: \[("node"[^\]]*agent\/main\.js")\]/.exec(readFileSync(path.join(REPO_ROOT, 'deploy/base/node/daemonset.yaml'), 'utf8'));
  const argv = m ? (JSON.parse(`[${m[1]}]`) as string[]) : [];
  return argv.filter((a) => a.startsWith('--'));
}

function newestSourceMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceMtime(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** True when dist/ is missing or older than a source or config it is built from. */
export function distIsStale(): boolean {
  if (!existsSync(BUILD_STAMP) || Object.values(DIST_COMMANDS).some((f) => !existsSync(path.join(DIST, f)))) return true;
  const built = statSync(BUILD_STAMP).mtimeMs;
  const newest = Math.max(
    ...SOURCES.map((d) => newestSourceMtime(path.join(REPO_ROOT, d))),
    ...CONFIGS.map((f) => statSync(path.join(REPO_ROOT, f)).mtimeMs),
  );
  return newest > built;
}

/** Runs the production build when dist/ is stale; a type error fails it (and so the caller) with tsc's output. */
export function ensureBuilt(say: (s: string) => void = () => undefined): void {
  if (!distIsStale()) return;
  say('compiling the controller and agents (npm run build: tsconfig.build.json -> dist/)');
  try {
    // one build at a time (test files run in parallel, and `npm run build` takes the same lock)
    mkdirSync(DIST, { recursive: true });
    execFileSync('flock', [path.join(DIST, '.build.lock'), path.join(REPO_ROOT, 'node_modules/.bin/tsc'), '-p', path.join(REPO_ROOT, 'tsconfig.build.json')],
      { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stdout?: Buffer; stderr?: Buffer };
    throw new Error(`npm run build failed:\n${String(e.stdout ?? '')}${String(e.stderr ?? '')}`);
  }
  // tsc leaves its build info alone when nothing changed in content (a touched file): mark the check done
  const now = new Date();
  utimesSync(BUILD_STAMP, now, now);
}
