import type http from 'node:http';
import type { Logger } from 'pino';
import type { AgentAddressService } from './address-service.js';
import type { CniHandler } from './cni-handler.js';
import type { CniSocketServer } from './cni-socket.js';
import type { DelQueue } from './del-queue.js';
import type { Store } from './ipam/store.js';
import type { NodeNetworkKeeper, ResyncLoop } from './node-network.js';
import type { CoalescingWriter, RecordSource } from './sync.js';

export type CnmServer = http.Server & { shutdown?: () => Promise<void> };

/** What the agent runs, in the order shutdown takes it down. */
export interface AgentParts {
  resync: Pick<ResyncLoop, 'stop'>;
  handler: Pick<CniHandler, 'stopHolding'>;
  cniSocket: Pick<CniSocketServer, 'close' | 'inFlight'>;
  cnmServer: CnmServer | undefined;
  delQueue: Pick<DelQueue, 'stop'>;
  /** Deletes the veths the DELs retired and the datapath has not deleted yet. */
  retiredVeths: { deleteNow(): Promise<void> };
  addresses: Pick<AgentAddressService, 'flush'>;
  writer: Pick<CoalescingWriter, 'flush'>;
  source: Pick<RecordSource, 'stop'>;
  store: Pick<Store, 'unlock'>;
  network: Pick<NodeNetworkKeeper, 'settled'>;
  health: http.Server;
}

/**
 * SIGTERM behaviour: stop accepting, finish the requests in flight, then flush the state and the spec,
 * release the lock and stop serving health. `closing` turns true at once (readiness and liveness say so).
 */
export class Shutdown {
  private started = false;

  constructor(private readonly logger: Logger) {}

  get closing(): boolean {
    return this.started;
  }

  /** Takes the agent down; a second call returns at once. */
  async close(p: AgentParts): Promise<void> {
    if (this.started) return;
    this.started = true;
    p.resync.stop();
    // ADDs held for an IP answer "try again" now rather than keep the socket open for their whole wait.
    p.handler.stopHolding();
    this.logger.info({ inFlight: p.cniSocket.inFlight() }, 'shutting down: finishing requests in flight');
    await Promise.all([p.cniSocket.close(), closeCnm(p.cnmServer)]);
    await p.delQueue.stop();
    // No DEL comes any more: delete what they retired rather than leave it to the next agent.
    await p.retiredVeths.deleteNow().catch((err: Error) => this.logger.warn({ err: err.message }, 'deleting retired veths failed'));
    await p.addresses.flush();
    await p.writer.flush().catch((err: Error) => this.logger.warn({ err: err.message }, 'final spec write failed'));
    await p.source.stop();
    await p.store.unlock();
    await p.network.settled();
    await new Promise<void>((r) => p.health.close(() => r()));
    this.logger.info('stopped');
  }
}

function closeCnm(server: CnmServer | undefined): Promise<void> {
  if (!server) return Promise.resolve();
  if (server.shutdown) return server.shutdown();
  return new Promise<void>((r) => server.close(() => r()));
}
