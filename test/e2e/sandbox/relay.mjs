#!/usr/bin/env node
// Runs INSIDE the sandbox's node network namespace: listens on that namespace's loopback and relays each
// connection to a unix socket. A path-named unix socket is a file, visible from every network namespace,
// and the sandbox (in the machine's own namespace) relays it on to the real kube-apiserver / moto on
// 127.0.0.1. So the agent reaches them at the very same URLs (TLS names included) without one route,
// address or rule added to the machine's own namespace.
//
// usage: node relay.mjs 127.0.0.1:PORT=/path/to.sock [...]
// Plain JavaScript: it starts under `ip netns exec` with node alone (it must not depend on Node type stripping or a build step).
import { createConnection, createServer } from 'node:net';

const pairs = process.argv.slice(2).map((arg) => {
  const m = /^(127\.0\.0\.1):(\d+)=(\/.+)$/.exec(arg);
  if (m === null) throw new Error(`bad mapping ${arg}: want 127.0.0.1:PORT=/socket/path`);
  return { host: m[1], port: Number(m[2]), socket: m[3] };
});

let listening = 0;
for (const { host, port, socket } of pairs) {
  const server = createServer((client) => {
    const upstream = createConnection(socket);
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  server.listen(port, host, () => {
    listening += 1;
    if (listening === pairs.length) process.stdout.write('relay ready\n');
  });
}
