// Binding a request to the pod sandbox that sent it, not only to its source IP. The API view lags the
// node: a CNI releases a pod's IP when its sandbox stops, before the kubelet's status update or the pod's
// deletion reaches the watch, and the IPAM may hand the IP to a new sandbox meanwhile. Node-local ground
// truth closes that window: CNIs that give each pod a host route through its own veth (aws-vpc-cni, calico,
// cilium with endpoint routes, the ptp plugin) create the new sandbox's veth, with a new ifindex, before
// the sandbox can send one packet; and the agent's raw-table rpfilter rule (src/netfilter/render.ts) drops
// metadata traffic whose source does not route back through the interface it came in on. So the interface
// that routes the source IP when the request is answered is the sender's, or a later sandbox's.
//
// Bridge CNIs have no per-pod route; where their IPAM is host-local (bridge, flannel, kubenet) its lease
// file for the IP names the sandbox holding it, written during CNI ADD and removed on DEL (leases.ts).
//
// When the agent learns a pod's IP it records that signal; every new connection compares the current one
// with the record. Pure here (judge); the watcher owns the records and the waiting, routes.ts and
// leases.ts read the node.

/**
 * route: the host-side interface that routes one pod IP (a host route: /32 or /128).
 * lease: the sandbox (container) ID in host-local's lease file for the IP.
 */
export type SandboxSignal =
  | { readonly kind: 'route'; readonly ifindex: number; readonly iface: string }
  | { readonly kind: 'lease'; readonly sandboxId: string };

/** Consumer-owned: the watcher asks; routes.ts and leases.ts read the node. */
export interface SandboxLookup {
  /** The per-pod signal for exactly this IP (a host route first, else a lease), or undefined. */
  signalFor(ip: string): SandboxSignal | undefined;
}

/** Two signals name the same sandbox exactly when their keys are equal. */
export const signalKey = (s: SandboxSignal): string =>
  s.kind === 'route' ? `route ${s.ifindex}` : `lease ${s.sandboxId}`;

/** The ifindex of a route signal (the only kind a shared device can make meaningless). */
const ifindexOf = (s: SandboxSignal | undefined): number | undefined =>
  s?.kind === 'route' ? s.ifindex : undefined;

/**
 * auto: binding for IPs with a per-pod signal (host route, else host-local lease) when first seen,
 * quarantine for the rest (cilium without endpoint routes, a bridge CNI with another IPAM). route: every
 * pod IP must have a per-pod signal (fail closed otherwise).
 * quarantine: no node signal; Terminating pods lose identity paths. off: the API view alone.
 */
export const SANDBOX_BINDING_MODES = ['auto', 'route', 'quarantine', 'off'] as const;
export type SandboxBindingMode = (typeof SANDBOX_BINDING_MODES)[number];

/** Why a found pod does not get its identity for this request (a typed deny reason). */
export type UnboundReason = 'sandbox_changed' | 'address_quarantined' | 'no_sandbox_signal';

/** What the agent recorded for one (pod UID, IP). */
export interface Binding {
  /** undefined: no per-pod signal (host route or lease) for the IP when the pod was learned. */
  readonly signal: SandboxSignal | undefined;
  /** The first request that saw a different signal, and which one (signalKey; for the settle rule). */
  readonly mismatch?: { readonly key: string; readonly since: number };
}

/**
 * A sandbox recreated for the same pod that gets the same IP back (rare: IPAMs hand out other addresses
 * first, aws-vpc-cni keeps a released IP in a 30 s cooldown) would otherwise stay refused until the pod is
 * replaced. After a mismatch that has lasted this long with no other pod claiming the IP, and the pod not
 * Terminating, the new interface is taken as the pod's own: the kubelet reports a new pod's IP within
 * seconds, so a different pod on that sandbox would by then have made the address a conflict.
 */
export const REBIND_AFTER_MS = 30_000;

export type Verdict =
  | { readonly kind: 'bound' }
  | { readonly kind: 'rebind'; readonly binding: Binding }
  | { readonly kind: 'refused'; readonly reason: UnboundReason; readonly binding?: Binding };

const BOUND: Verdict = { kind: 'bound' };

/** The decision for one request from a found pod (pure; time is a parameter). */
export function judge(
  mode: SandboxBindingMode,
  terminating: boolean,
  recorded: Binding | undefined,
  current: SandboxSignal | undefined,
  now: number,
): Verdict {
  if (mode === 'off') return BOUND;
  // Without a per-pod signal, a Terminating pod's sandbox may already be gone and its IP handed on
  // (the CNI releases it before the pod object is deleted): the address is quarantined.
  const quarantine = (): Verdict =>
    terminating ? { kind: 'refused', reason: 'address_quarantined' } : BOUND;
  if (mode === 'quarantine') return quarantine();
  const signal = recorded?.signal;
  if (signal === undefined && mode === 'auto') return quarantine();
  if (signal !== undefined && current !== undefined && signalKey(current) === signalKey(signal)) return BOUND;
  if (current === undefined) {
    return { kind: 'refused', reason: signal === undefined ? 'no_sandbox_signal' : 'sandbox_changed' };
  }
  const reason: UnboundReason = signal === undefined ? 'no_sandbox_signal' : 'sandbox_changed';
  if (terminating) return { kind: 'refused', reason };
  const m = recorded?.mismatch;
  const key = signalKey(current);
  if (m === undefined || m.key !== key) {
    return { kind: 'refused', reason, binding: { signal, mismatch: { key, since: now } } };
  }
  if (now - m.since >= REBIND_AFTER_MS) return { kind: 'rebind', binding: { signal: current } };
  return { kind: 'refused', reason };
}

/** The records, keyed by pod UID and IP, and the addresses quarantined after their pod left. */
export class SandboxBindings {
  private readonly byKey = new Map<string, Binding>();
  /** ifindex → the records naming it, to spot an interface that is not one pod's own. */
  private readonly byIfindex = new Map<number, Set<string>>();
  /**
   * Interfaces that route more than one pod's IP (a CNI with /32 routes through one shared device):
   * they say nothing about which sandbox sent a request, so IPs behind them are judged without a signal.
   */
  private readonly shared = new Set<number>();
  /** IP → UID of the pod that last held it and is no longer live there. */
  private readonly quarantined = new Map<string, string>();

  constructor(
    readonly mode: SandboxBindingMode,
    private readonly lookup: SandboxLookup,
  ) {}

  /** A pod claims ip (first sight, or a new IP): record its signal; a new claimant lifts quarantine. */
  learn(uid: string, ip: string): void {
    if (this.mode === 'off') return;
    const holder = this.quarantined.get(ip);
    if (holder !== undefined && holder !== uid) this.quarantined.delete(ip);
    const key = `${uid} ${ip}`;
    if (this.byKey.has(key) || this.mode === 'quarantine') return;
    const signal = this.lookup.signalFor(ip);
    const ifindex = ifindexOf(signal);
    if (ifindex !== undefined && this.isShared(ifindex, uid)) {
      if (this.shared.size >= MAX_SHARED) this.shared.clear();
      this.shared.add(ifindex);
      for (const other of [...(this.byIfindex.get(ifindex) ?? [])]) this.put(other, { signal: undefined });
      this.put(key, { signal: undefined });
      return;
    }
    this.put(key, { signal });
  }

  /** The pod no longer holds ip (deleted, not live, or its IP changed). */
  forget(uid: string, ip: string): void {
    if (this.mode === 'off') return;
    this.put(`${uid} ${ip}`, undefined);
    this.quarantined.delete(ip);
    this.quarantined.set(ip, uid);
    // Bounded: an IPv6 pod prefix can hand out ever new addresses; the oldest entries go first.
    if (this.quarantined.size > MAX_QUARANTINED) {
      const [oldest] = this.quarantined.keys();
      if (oldest !== undefined) this.quarantined.delete(oldest);
    }
  }

  /** undefined when the request may have the pod's identity, else why not. */
  check(pod: { uid: string; terminating?: boolean }, ip: string, now: number): UnboundReason | undefined {
    if (this.mode === 'off') return undefined;
    const key = `${pod.uid} ${ip}`;
    const recorded = this.byKey.get(key);
    const current = this.usesSignal(pod.uid, ip) ? this.lookup.signalFor(ip) : undefined;
    const v = judge(this.mode, pod.terminating === true, recorded, current, now);
    if (v.kind === 'bound') return undefined;
    if (v.kind === 'rebind') {
      const to = ifindexOf(v.binding.signal);
      if (to !== undefined && (this.shared.has(to) || this.isShared(to, pod.uid))) return 'sandbox_changed';
      this.put(key, v.binding);
      return undefined;
    }
    if (v.binding !== undefined && recorded !== undefined) this.put(key, v.binding);
    return v.reason;
  }

  /** True when ifindex is recorded for another pod, or known to serve several. */
  private isShared(ifindex: number, uid: string): boolean {
    if (this.shared.has(ifindex)) return true;
    for (const k of this.byIfindex.get(ifindex) ?? []) if (!k.startsWith(`${uid} `)) return true;
    return false;
  }

  /** Sets (or, with undefined, drops) a record, keeping byIfindex in step. */
  private put(key: string, b: Binding | undefined): void {
    const before = ifindexOf(this.byKey.get(key)?.signal);
    if (before !== undefined) {
      const set = this.byIfindex.get(before);
      set?.delete(key);
      if (set?.size === 0) this.byIfindex.delete(before);
    }
    if (b === undefined) {
      this.byKey.delete(key);
      return;
    }
    this.byKey.set(key, b);
    const after = ifindexOf(b.signal);
    if (after === undefined) return;
    let set = this.byIfindex.get(after);
    if (set === undefined) this.byIfindex.set(after, (set = new Set()));
    set.add(key);
  }

  /** True when requests for this pod and ip are judged by a node signal (a per-new-connection read). */
  usesSignal(uid: string, ip: string): boolean {
    if (this.mode === 'off' || this.mode === 'quarantine') return false;
    return this.mode === 'route' || this.byKey.get(`${uid} ${ip}`)?.signal !== undefined;
  }

  /** True when ip's last pod left and no other pod has claimed it since. */
  isQuarantined(ip: string): boolean {
    return this.quarantined.has(ip);
  }
}

/** Far more addresses than a node's pods cycle through in the minutes a lagging view could matter. */
const MAX_QUARANTINED = 4096;
/** Shared devices are few (cilium_host, a bridge); the bound only guards against a pathological node. */
const MAX_SHARED = 1024;
