// The node's pod view, indexed by IP (pure; the watcher feeds it). Only live pods count: not
// hostNetwork (they share the node's IP), not Succeeded/Failed, and with an IP. Pods are keyed by UID, so
// a new pod on a reused IP is a different entry with its own identity (jtblin/kube2iam#17, #102, #178),
// and two live pods claiming one IP make a conflict: the caller gets nothing. Terminating pods (deletion
// timestamp set) stay in the index, marked, so that their IP still conflicts with a newcomer's; whether
// they keep their identity is the sandbox binding's call (sandbox.ts), not the index's.
import { canonicalIp } from '../ip.js';
import type { PodIdentity, PodLookupResult } from './types.js';

/** The fields of a Kubernetes V1Pod the index reads (structurally compatible with V1Pod). */
export interface PodLike {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    annotations?: Record<string, string>;
    /** Set when the pod is Terminating (Date from the client library, string in raw JSON). */
    deletionTimestamp?: Date | string | null;
  };
  spec?: { hostNetwork?: boolean; serviceAccountName?: string; nodeName?: string };
  status?: { phase?: string; podIP?: string; podIPs?: { ip?: string }[] };
}

export interface IndexedPod extends PodIdentity {
  readonly ips: readonly string[];
}

/** Annotation prefixes the role decision reads; others (last-applied-configuration, ...) are not kept. */
export const KEPT_ANNOTATIONS = ['iam.amazonaws.com/', 'eks.amazonaws.com/', 'imdsgate.io/'];

/** Only what the decision reads: kube2iam's last-applied-configuration copies can be kilobytes. */
export function keptAnnotations(all: Readonly<Record<string, string>> | undefined): Record<string, string> {
  return Object.fromEntries(
    Object.entries(all ?? {}).filter(([k]) => KEPT_ANNOTATIONS.some((pre) => k.startsWith(pre))),
  );
}

/** One spelling per address: IPv4-mapped IPv6 → IPv4, IPv6 lower-case and compressed. */
export { canonicalIp };

/** The pod as the index keeps it, or a reason it is not a live, identifiable pod. */
export function toLivePod(p: PodLike): IndexedPod | { skip: string } {
  const m = p.metadata;
  if (!m?.uid || !m.name || !m.namespace) return { skip: 'pod without uid, name or namespace' };
  if (p.spec?.hostNetwork === true) return { skip: 'hostNetwork' };
  const phase = p.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return { skip: `phase ${phase}` };
  const raw = [p.status?.podIP, ...(p.status?.podIPs ?? []).map((x) => x.ip)];
  const ips = [...new Set(raw.filter((x): x is string => !!x).map(canonicalIp))].filter(
    (x): x is string => x !== undefined,
  );
  if (ips.length === 0) return { skip: 'no IP yet' };
  const annotations = keptAnnotations(m.annotations);
  return {
    ip: ips[0] ?? '',
    ips,
    namespace: m.namespace,
    name: m.name,
    uid: m.uid,
    serviceAccount: p.spec?.serviceAccountName || 'default',
    annotations,
    ...(p.spec?.nodeName ? { nodeName: p.spec.nodeName } : {}),
    ...(m.deletionTimestamp ? { terminating: true } : {}),
  };
}

export type IndexChange =
  | { kind: 'added'; pod: IndexedPod }
  | { kind: 'updated'; pod: IndexedPod; before: IndexedPod }
  | { kind: 'removed'; pod: IndexedPod }
  | { kind: 'none' };

export class PodIndex {
  private readonly byUid = new Map<string, IndexedPod>();
  private readonly uidsByIp = new Map<string, Set<string>>();

  /** Applies a pod as listed or watched; a pod that is no longer live is removed. */
  apply(p: PodLike): IndexChange {
    const live = toLivePod(p);
    if ('skip' in live) return p.metadata?.uid ? this.remove(p.metadata.uid) : { kind: 'none' };
    const before = this.byUid.get(live.uid);
    if (before !== undefined) this.unlink(before);
    this.byUid.set(live.uid, live);
    for (const ip of live.ips) {
      let set = this.uidsByIp.get(ip);
      if (set === undefined) this.uidsByIp.set(ip, (set = new Set()));
      set.add(live.uid);
    }
    if (before === undefined) return { kind: 'added', pod: live };
    return sameIdentity(before, live) ? { kind: 'none' } : { kind: 'updated', pod: live, before };
  }

  remove(uid: string): IndexChange {
    const before = this.byUid.get(uid);
    if (before === undefined) return { kind: 'none' };
    this.unlink(before);
    this.byUid.delete(uid);
    return { kind: 'removed', pod: before };
  }

  /** Replaces the whole view (a relist); returns what changed so credentials can follow. */
  replace(pods: readonly PodLike[]): IndexChange[] {
    const seen = new Set<string>();
    const changes: IndexChange[] = [];
    for (const p of pods) {
      const c = this.apply(p);
      if (p.metadata?.uid) seen.add(p.metadata.uid);
      if (c.kind !== 'none') changes.push(c);
    }
    for (const uid of [...this.byUid.keys()]) {
      if (!seen.has(uid)) changes.push(this.remove(uid));
    }
    return changes;
  }

  /** Every live pod claiming ip (canonical), each with ip as its address. */
  claimants(ip: string): IndexedPod[] {
    const uids = this.uidsByIp.get(ip);
    if (uids === undefined) return [];
    const out: IndexedPod[] = [];
    for (const uid of uids) {
      const pod = this.byUid.get(uid);
      if (pod !== undefined) out.push(pod.ip === ip ? pod : { ...pod, ip });
    }
    return out;
  }

  lookup(rawIp: string): PodLookupResult {
    const ip = canonicalIp(rawIp);
    const uids = ip === undefined ? undefined : this.uidsByIp.get(ip);
    if (ip === undefined || uids === undefined || uids.size === 0) return { kind: 'unknown' };
    if (uids.size > 1) return { kind: 'conflict' };
    const [uid] = uids;
    const pod = uid === undefined ? undefined : this.byUid.get(uid);
    if (pod === undefined) return { kind: 'unknown' };
    // The stored object itself for the primary IP: lookups then return the same object until the pod
    // changes, so per-pod memos downstream (the credential cache key) hold across requests.
    return { kind: 'found', pod: pod.ip === ip ? pod : { ...pod, ip } };
  }

  pods(): IterableIterator<IndexedPod> {
    return this.byUid.values();
  }

  get size(): number {
    return this.byUid.size;
  }

  private unlink(pod: IndexedPod): void {
    for (const ip of pod.ips) {
      const set = this.uidsByIp.get(ip);
      set?.delete(pod.uid);
      if (set?.size === 0) this.uidsByIp.delete(ip);
    }
  }
}

function sameIdentity(a: IndexedPod, b: IndexedPod): boolean {
  return (
    a.ips.join() === b.ips.join() &&
    a.serviceAccount === b.serviceAccount &&
    JSON.stringify(a.annotations) === JSON.stringify(b.annotations)
  );
}
