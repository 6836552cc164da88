// Per-source limits of the front door, so that one pod cannot deny service to its neighbours (issue 11:
// 15,000 idle connections from one pod took the agent from 67 MiB to 379 MiB, past the chart's 256 MiB).
// - open connections per source address and in total (net.Server.maxConnections closes the excess);
// - a first-byte deadline on every new connection; Node's headersTimeout bounds the rest of the head;
// - requests in flight per source (pipelining lets one connection carry many).
// A refused connection gets an IMDS-shaped 429 (what IMDS answers when it throttles, see errors.ts) written
// straight to the socket, before Node's HTTP parser ever sees it, and is closed.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { rawErrorResponse } from './answers.js';
import type { LimitsConfig } from './types.js';

export type { LimitsConfig };

export type RefusalReason =
  'source_connections' | 'total_connections' | 'source_requests' | 'first_byte_timeout' | 'request_timeout';

/** A count per key that forgets keys at zero, so the map never outgrows the live sources. */
export class CountPerKey {
  private readonly counts = new Map<string, number>();
  /** Adds one unless the key is at max already; true when added. */
  tryAdd(key: string, max: number): boolean {
    const n = this.counts.get(key) ?? 0;
    if (n >= max) return false;
    this.counts.set(key, n + 1);
    return true;
  }
  remove(key: string): void {
    const n = this.counts.get(key) ?? 0;
    if (n <= 1) this.counts.delete(key);
    else this.counts.set(key, n - 1);
  }
  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }
  get keys(): number {
    return this.counts.size;
  }
}

/**
 * Listen backlog of the front door (Node's default is 511). A flood of short-lived connections can fill
 * the accept queue whenever the agent is briefly not scheduled; the kernel then drops new SYNs, from every
 * pod alike, and a dropped SYN costs its client a 1 s retransmission (bench/flood RESULTS.md). Linux caps
 * the value at net.core.somaxconn (4096 by default since 5.4).
 */
export const LISTEN_BACKLOG = 4096;

/** A refused peer that keeps its socket open is cut after this long; honest clients close first. */
const REFUSED_LINGER_MS = 250;
/** At most one warning per reason per interval; the metric has the exact count. */
const LOG_INTERVAL_MS = 10_000;

export interface FrontDoorLimits {
  /** True when the source may start one more request; call end() once it is answered. */
  beginRequest(source: string): boolean;
  endRequest(source: string): void;
  refused(reason: RefusalReason, source: string): void;
}

/** Wires the connection limits into Node's HTTP server; returns the request-level half for app.ts. */
export function installLimits(
  server: Server,
  cfg: LimitsConfig,
  deps: { metrics: Metrics; logger: Logger },
): FrontDoorLimits {
  const connections = new CountPerKey();
  const requests = new CountPerKey();
  const lastLog = new Map<RefusalReason, { at: number; suppressed: number }>();
  const refused = (reason: RefusalReason, source: string) => {
    deps.metrics.connectionsRefused.inc({ reason });
    const now = Date.now();
    const l = lastLog.get(reason);
    if (l !== undefined && now - l.at < LOG_INTERVAL_MS) {
      l.suppressed++;
      return;
    }
    lastLog.set(reason, { at: now, suppressed: 0 });
    deps.logger.warn({ reason, ip: source, suppressed: l?.suppressed ?? 0 }, 'front-door limit reached');
  };

  server.maxConnections = cfg.maxConnections;
  server.on('drop', (d?: { remoteAddress?: string }) => refused('total_connections', d?.remoteAddress ?? ''));
  // Node's own check of headersTimeout/requestTimeout runs every connectionsCheckingInterval (30 s by
  // default, set at creation in app.ts); the first-byte timer below is exact.
  server.headersTimeout = cfg.headersTimeoutMs;

  // Node's HTTP server takes each connection through its own 'connection' listener (node:_http_server
  // connectionListener). Ours runs instead and hands over only the admitted ones, so that a refused
  // socket never gets a parser, a request object or a trip through the pipeline.
  const httpListeners = server.listeners('connection') as ((s: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    const source = socket.remoteAddress ?? '';
    if (!connections.tryAdd(source, cfg.maxConnectionsPerSource)) {
      refused('source_connections', source);
      refuse(socket);
      return;
    }
    deps.metrics.connectionsOpen.inc();
    const firstByte = setTimeout(() => {
      if (socket.bytesRead > 0) return;
      refused('first_byte_timeout', source);
      socket.destroy();
    }, cfg.headersTimeoutMs);
    socket.once('close', () => {
      clearTimeout(firstByte);
      connections.remove(source);
      deps.metrics.connectionsOpen.dec();
    });
    for (const l of httpListeners) l.call(server, socket);
  });

  return {
    beginRequest: (source) => {
      if (requests.tryAdd(source, cfg.maxRequestsPerSource)) return true;
      refused('source_requests', source);
      return false;
    },
    endRequest: (source) => requests.remove(source),
    refused,
  };
}

function refuse(socket: Socket): void {
  // Read and drop what the client sends, so that closing does not reset the connection under the answer.
  socket.on('error', () => undefined);
  socket.resume();
  socket.end(rawErrorResponse('TOO_MANY_REQUESTS'));
  setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
}
