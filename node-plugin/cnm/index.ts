import type { Server } from 'node:http';
import { CnmDriver } from './driver.js';
import { createPluginHttpServer } from './server.js';
import { CnmStore } from './state.js';
import type { CnmDeps } from './types.js';

/**
 * The Docker libnetwork remote network driver and IPAM driver "azure-vnet".
 *
 * The agent calls `createCnmServer(deps)` once and `listen()`s the returned server on the plugin socket
 * (DEFAULT_SOCKET_PATH, or anywhere plus a spec file from writePluginSpec). The state dir is locked for
 * the server's lifetime; `server.shutdown()` (or close()) flushes and unlocks it.
 * `server.cnm.whenReady()` resolves after the start-up reconciliation of interrupted address requests,
 * which runs once the agent's record has a status (before that, the agent cannot vouch for addresses).
 */

export type CnmServer = Server & {
  cnm: CnmDriver;
  /** Stops listening, waits for open calls and the last state write, and unlocks the state dir. */
  shutdown(): Promise<void>;
};

export function createCnmServer(deps: CnmDeps): CnmServer {
  const logger = deps.logger; // the agent hands over a child logger labelled for the CNM driver
  const store = new CnmStore(deps.stateDir);
  const driver = new CnmDriver(deps.addresses, deps.datapath, store, logger, deps.dockerVeths, deps.now);
  const server = createPluginHttpServer(driver, logger) as CnmServer;
  server.cnm = driver;
  const closed = new Promise<void>((resolve) => server.once('close', resolve));
  server.on('close', () => {
    void store.closeWhenIdle();
  });
  server.shutdown = async () => {
    if (server.listening) server.close();
    else server.emit('close');
    await closed;
    await store.flushAndClose();
  };
  return server;
}

export { CnmDriver } from './driver.js';
export { listenOnSocket } from './server.js';
export { writePluginSpec, removePluginSpec, PLUGIN_NAME, DEFAULT_SOCKET_PATH, DOCKER_SPEC_DIR, DOCKER_SOCKET_DIR } from './spec.js';
export { DriverError, noFreeAddressMessage } from './pool.js';
export { PLUGIN_CONTENT_TYPE, ProtocolError } from './protocol.js';
export type { CnmDeps, Datapath, PodAddressService, AddressOwner, AssignedAddress } from './types.js';
