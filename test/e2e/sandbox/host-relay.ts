// The machine-side half of the loopback relay (see relay.mjs): unix socket → 127.0.0.1:PORT. It runs in
// the test process, in the machine's own namespace, and only ever connects to loopback.
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface HostRelay {
  /** `127.0.0.1:PORT=/socket` arguments for relay.mjs. */
  readonly mappings: readonly string[];
  close(): Promise<void>;
}

export async function startHostRelay(urls: readonly string[]): Promise<HostRelay> {
  const dir = mkdtempSync(join(tmpdir(), 'imdsgate-relay-'));
  const servers: Server[] = [];
  const open = new Set<Socket>();
  const mappings: string[] = [];
  for (const [i, raw] of urls.entries()) {
    const url = new URL(raw);
    if (url.hostname !== '127.0.0.1') throw new Error(`relay target ${raw}: only 127.0.0.1 is relayed`);
    const port = Number(url.port);
    const socket = join(dir, `${i}.sock`);
    const server = createServer((client) => {
      const upstream = createConnection(port, '127.0.0.1');
      for (const s of [client, upstream]) {
        open.add(s);
        s.on('close', () => open.delete(s));
      }
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socket, resolve));
    servers.push(server);
    mappings.push(`127.0.0.1:${port}=${socket}`);
  }
  return {
    mappings,
    async close() {
      for (const s of open) s.destroy(); // watches are long-lived; close() would wait for them
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
