import { pino } from 'pino';
import { configureDatapath } from '../datapath/index.js';
import { startAgent } from './agent.js';
import { agentHelp, parseAgentConfig, wantsHelp } from './config.js';

/**
 * `node --loader ts-node/esm node-plugin/agent/main.ts --node-name=$NODE_NAME [flags]`: the node agent.
 * SIGTERM and SIGINT shut it down gracefully; a second signal exits at once.
 */

if (wantsHelp(process.argv.slice(2))) {
  process.stdout.write(agentHelp());
  process.exit(0);
}
let config;
try {
  config = parseAgentConfig(process.argv.slice(2), process.env);
  configureDatapath({ procSysRoot: config.procSysRoot });
} catch (err) {
  process.stderr.write(`podvnet-agent: ${(err as Error).message}\n`);
  process.exit(2);
}
const logger = pino({ level: config.logLevel, base: { component: 'podvnet-agent', node: config.nodeName } });
try {
  const agent = await startAgent(config, { logger });
  logger.info({ health: agent.healthAddress }, 'agent started');
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, 'signal received');
    agent.close().then(
      () => process.exit(0),
      (err: Error) => {
        logger.error({ err: err.message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
} catch (err) {
  logger.fatal({ err: (err as Error).message }, 'agent failed to start');
  process.exit(1);
}
