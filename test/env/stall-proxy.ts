// A TCP proxy on loopback in front of a real service (moto STS in the tests) that can be told to stall:
// while stalled it accepts connections and reads nothing from them, exactly as a service that accepted
// and never answered; `release()` connects the held ones through, as a service that recovers; `drop()`
// closes them instead.
import { connect, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface StallProxy {
  readonly url: string;
  stalled: boolean;
  /** Connections accepted so far. */
  accepted(): number;
  /** Connections held now. */
  held(): number;
  release(): void;
  drop(): void;
  stop(): Promise<void>;
}

export async function startStallProxy(target: string): Promise<StallProxy> {
  const t = new URL(target);
  const held: Socket[] = [];
  const open = new Set<Socket>();
  let accepted = 0;
  const through = (client: Socket) => {
    const up = connect(Number(t.port), t.hostname);
    open.add(up);
    up.on('close', () => open.delete(up));
    client.pipe(up).on('error', () => client.destroy());
    up.pipe(client).on('error', () => up.destroy());
    up.on('error', () => client.destroy());
    client.on('close', () => up.destroy());
  };
  const server = createServer((client) => {
    accepted += 1;
    open.add(client);
    client.on('close', () => open.delete(client));
    client.on('error', () => undefined);
    if (proxy.stalled) held.push(client);
    else through(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const proxy: StallProxy = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stalled: false,
    accepted: () => accepted,
    held: () => held.filter((s) => !s.destroyed).length,
    release() {
      for (const c of held.splice(0)) if (!c.destroyed) through(c);
    },
    drop() {
      for (const c of held.splice(0)) c.destroy();
    },
    async stop() {
      for (const s of open) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
  return proxy;
}
