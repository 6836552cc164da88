// What the request path needs to know about a caller. Implemented by the Kubernetes watch (pods/watcher)
// and by the file-based identity map (pods/file-identity) used by the demo and the front-door tests.
import type { UnboundReason } from './sandbox.js';

export interface PodIdentity {
  readonly ip: string;
  readonly namespace: string;
  readonly name: string;
  /** Empty for the file-based map; the Kubernetes UID otherwise. Distinguishes a new pod on a reused IP. */
  readonly uid: string;
  readonly serviceAccount: string;
  readonly annotations: Readonly<Record<string, string>>;
  readonly nodeName?: string;
  /** The pod has a deletion timestamp (Kubernetes mode only). */
  readonly terminating?: boolean;
}

export type PodLookupResult =
  | { readonly kind: 'found'; readonly pod: PodIdentity }
  | { readonly kind: 'unknown' }
  /** Two live pods claim the IP: the caller gets nothing. */
  | { readonly kind: 'conflict' }
  /** The view names a pod, but the node says the sender is not (or may not be) its sandbox (sandbox.ts). */
  | { readonly kind: 'unbound'; readonly reason: UnboundReason };

export interface PodLookup {
  /**
   * Resolves a source IP. May wait a bounded time for a watch to catch up, unless opts.wait is false;
   * never throws for unknown IPs. connection (the request's TCP connection, opaque) lets a node-verified
   * sandbox hold for its life.
   */
  byIp(ip: string, connection?: object, opts?: { readonly wait?: boolean }): Promise<PodLookupResult>;
  /** True once the first full view is in. */
  isReady(): boolean;
}

/** Milliseconds since the epoch; injected so that expiry and refresh are testable. */
export type Clock = () => number;
export const systemClock: Clock = () => Date.now();
