// Raw TCP clients for front-door tests: bytes an HTTP client library would never send, sources picked
// by local address (127.0.0.x are distinct sources on loopback), and connections held open on purpose.
import { connect, type Socket } from 'node:net';

export interface RawOptions {
  host?: string;
  localAddress?: string;
  /** Shut down the write side after sending (a half-close); default true. */
  halfClose?: boolean;
  timeoutMs?: number;
}

/** Sends bytes, returns everything received until the server closes (or the timeout destroys it). */
export function raw(port: number, bytes: string | Buffer, o: RawOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = connect({ port, host: o.host ?? '127.0.0.1', localAddress: o.localAddress }, () =>
      o.halfClose === false ? s.write(bytes) : s.end(bytes),
    );
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    s.setTimeout(o.timeoutMs ?? 3000, () => s.destroy());
  });
}

export const status = (res: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(res)?.[1]);

export interface Held {
  readonly socket: Socket;
  /** Resolves when the server closes the connection: what it sent and how long after connect. */
  readonly closed: Promise<{ data: string; ms: number }>;
}

/** Opens a connection, optionally sends a prefix, and keeps it open until the server closes it. */
export function hold(port: number, o: { localAddress?: string; send?: string; host?: string } = {}) {
  return new Promise<Held>((resolve, reject) => {
    const started = performance.now();
    const chunks: Buffer[] = [];
    const socket = connect({ port, host: o.host ?? '127.0.0.1', localAddress: o.localAddress });
    const closed = new Promise<{ data: string; ms: number }>((done) => {
      socket.on('close', () =>
        done({ data: Buffer.concat(chunks).toString('latin1'), ms: performance.now() - started }),
      );
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.once('connect', () => {
      if (o.send !== undefined) socket.write(o.send);
      resolve({ socket, closed });
    });
    socket.once('error', reject);
  });
}

export const request = (target: string, extra = '') =>
  `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${extra}\r\n`;
