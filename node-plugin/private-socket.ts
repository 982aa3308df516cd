import { chmod, mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Server } from 'node:net';

/**
 * Listens on a root-only unix socket (mode 0600), replacing a socket file a previous (killed) process left.
 * The socket is created 0600 from the start: the umask is narrowed around `listen`, whose bind(2) runs
 * synchronously inside the call, so there is no moment in which another local user could connect (a
 * chmod after listening would leave one). The chmod afterwards only guards against a kernel or Node that
 * ignored the umask.
 */
export async function listenPrivateSocket(server: Server, socketPath: string): Promise<void> {
  await mkdir(dirname(socketPath), { recursive: true, mode: 0o755 });
  await rm(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const previous = process.umask(0o177);
    try {
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    } finally {
      process.umask(previous);
    }
  });
  await chmod(socketPath, 0o600);
}
