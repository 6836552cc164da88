// A stand-in IMDS on loopback that misbehaves on purpose, chosen by the request path, written on a raw
// socket so that every byte (and every missing byte) is exactly what the test wants. The last path
// segment picks the behaviour (so any forwarded prefix works, e.g. /latest/meta-data/placement/stall):
//   stall        accepts, reads the request, never answers
//   trickle      sends headers (Content-Length 1000), then one body byte every 100 ms
//   huge         a chunked body of 64 KiB chunks, up to 8 MiB, as fast as the socket takes it
//   redirect     302 with a Location elsewhere
//   evil         200 with hop-by-hop, cookie, proxy and made-up headers and a bad Content-Type
//   PUT /latest/api/token   200 with a session token (or stalls when `stallToken` is set)
//   anything else    200 "ok", text/plain
// Setting `mode` applies one behaviour to every request, whatever its method or path (a stand-in STS).
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export const EVIL_HEADERS = [
  'Set-Cookie: session=stolen; Path=/',
  'Location: http://169.254.169.254.evil.invalid/',
  'Connection: keep-alive, X-Injected',
  'Keep-Alive: timeout=600',
  'Upgrade: websocket',
  'Proxy-Authenticate: Basic realm="upstream"',
  'Proxy-Connection: keep-alive',
  'TE: trailers',
  'Trailer: X-Evil-Trailer',
  'X-Injected: from-upstream',
  'Access-Control-Allow-Origin: *',
  'WWW-Authenticate: Basic realm="node"',
  'Content-Type: text/html; charset=<script>',
];

export interface HostileUpstream {
  readonly url: string;
  /** Requests received, as "METHOD path". */
  readonly seen: string[];
  /** Sockets still open; with `key`, only those whose last request's last segment is `key`. */
  openSockets(key?: string): number;
  stallToken: boolean;
  mode: 'stall' | 'trickle' | 'huge' | 'redirect' | 'evil' | undefined;
  stop(): Promise<void>;
}

export async function startHostileUpstream(): Promise<HostileUpstream> {
  const sockets = new Map<Socket, string>();
  const timers = new Set<NodeJS.Timeout>();
  const state: HostileUpstream = {
    url: '',
    seen: [],
    openSockets: (key) =>
      [...sockets].filter(([s, path]) => !s.destroyed && (key === undefined || last(path) === key)).length,
    stallToken: false,
    mode: undefined,
    async stop() {
      for (const t of timers) clearInterval(t);
      for (const s of sockets.keys()) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
  const server: Server = createServer((sock) => {
    sockets.set(sock, '');
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    let buf = '';
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        const [method = '', path = ''] = buf.slice(0, buf.indexOf('\r\n')).split(' ');
        buf = buf.slice(end + 4);
        state.seen.push(`${method} ${path}`);
        sockets.set(sock, path);
        answer(sock, method, path);
      }
    });
  });

  function answer(sock: Socket, method: string, path: string): void {
    const key = state.mode ?? last(path);
    const head = (status: string, lines: string[]) =>
      sock.write(`HTTP/1.1 ${status}\r\nServer: EC2ws\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`);
    if (method === 'PUT' && state.mode === undefined) {
      if (state.stallToken) return;
      head('200 OK', ['Content-Type: text/plain', 'Content-Length: 7']);
      sock.write('token-1');
    } else if (key === 'stall') {
      return;
    } else if (key === 'trickle') {
      head('200 OK', ['Content-Type: text/plain', 'Content-Length: 1000']);
      const t = setInterval(() => (sock.destroyed ? clearInterval(t) : sock.write('x')), 100);
      timers.add(t);
    } else if (key === 'huge') {
      head('200 OK', ['Content-Type: application/octet-stream', 'Transfer-Encoding: chunked']);
      const chunk = Buffer.alloc(65_536, 0x61);
      let sent = 0;
      const more = () => {
        while (!sock.destroyed && sent < 128) {
          sent += 1;
          if (!sock.write(`10000\r\n${chunk.toString('latin1')}\r\n`)) return void sock.once('drain', more);
        }
        if (!sock.destroyed) sock.write('0\r\n\r\n');
      };
      more();
    } else if (key === 'redirect') {
      head('302 Found', ['Location: http://127.0.0.2/latest/meta-data/iam/', 'Content-Length: 0']);
    } else if (key === 'evil') {
      head('200 OK', [...EVIL_HEADERS, 'Content-Length: 4']);
      sock.write('evil');
    } else {
      head('200 OK', ['Content-Type: text/plain', 'Content-Length: 2']);
      sock.write('ok');
    }
  }

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return Object.assign(state, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
}

const last = (path: string) => path.slice(path.lastIndexOf('/') + 1);
