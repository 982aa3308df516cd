// Runs inside another network namespace (started by netns-listen.ts through `nsenter --net=...`): binds
// the listening sockets asked for there, hands each to the parent over the IPC channel, and exits. The
// sockets stay in that namespace; the parent accepts on them. Plain JavaScript: no loader, quick start.
import net from 'node:net';

const binds = JSON.parse(process.argv[2] ?? '[]');
try {
  for (let i = 0; i < binds.length; i++) {
    const server = net.createServer();
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: binds[i].host, port: binds[i].port }, resolve);
    });
    await new Promise((resolve) => process.send({ index: i }, server, resolve));
  }
  process.send({ done: true }, () => process.exit(0));
} catch (err) {
  process.send({ error: err.message }, () => process.exit(1));
}
