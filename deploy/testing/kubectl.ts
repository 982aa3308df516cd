// Test kit (deploy's tests; never shipped): runs kubectl against a kubeconfig, from the repository root.
import { execFile } from 'node:child_process';
import { KUBECTL, REPO_ROOT } from './manifests.js';

/**
 * Runs kubectl asynchronously against a kubeconfig. Asynchronous on purpose: the API emulator serves
 * from this same process, so a blocking spawn would starve it.
 */
export interface KubectlResult { code: number; stdout: string; stderr: string }

export function kubectl(kubeconfig: string, args: string[], stdin?: string): Promise<KubectlResult> {
  return new Promise((resolve) => {
    const child = execFile(KUBECTL, args, { env: { ...process.env, KUBECONFIG: kubeconfig }, cwd: REPO_ROOT, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? (err as unknown as { code: number }).code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      });
    child.stdin?.end(stdin ?? '');
  });
}
