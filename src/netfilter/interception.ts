// Interception self-check: rules that exist but match no pod interface intercept nothing, and pods then
// talk to the node's own metadata service (the node's role). The agent cannot see packets that never reach
// it, so it looks at the node's interfaces instead: every pod-facing interface must match --interfaces.
//
// A pod interface here is the host end of a veth pair whose peer lives in another network namespace
// (every common CNI: VPC CNI eni*, Calico cali*, Cilium lxc*, and the bridge plugin's veth*), and that is not
// enslaved to a bridge (the bridge plugin's traffic enters netfilter on the bridge, cni0, so its veths do
// not need to match). sysfs tells both: `iflink` is the peer's ifindex, equal to `ifindex` for a device
// without a peer, and `master` links a bridge port to its bridge
// (https://www.kernel.org/doc/Documentation/ABI/testing/sysfs-class-net).
// A pair with both ends in this namespace (Cilium's cilium_host/cilium_net: each one's iflink is the
// other's ifindex) is not a pod interface, nor a device with a DEVTYPE in its uevent (vlan, vxlan, macvlan,
// ipvlan, bridge ...: their iflink is a parent, not a peer; a veth declares none), nor the node's own uplink
// (the interface that holds --host-ip: a node that is itself a container, as in kind, reaches the world
// through a veth).
//
// What this does not see: a CNI that steers pod traffic past netfilter altogether (eBPF host routing), where
// the interfaces match but the DNAT never runs. docs/troubleshooting.md says how to spot that.
import { readdir, readFile, access } from 'node:fs/promises';
import { join } from 'node:path';
import { parseInterfaces } from './render.js';

export interface NetInterface {
  readonly name: string;
  readonly ifindex: number;
  /** The peer's ifindex for a veth; the device's own ifindex otherwise. */
  readonly iflink: number;
  /** Enslaved to a bridge (or bond): its traffic enters netfilter on the master. */
  readonly hasMaster: boolean;
  /** DEVTYPE from uevent (vlan, vxlan, bridge ...); undefined for a veth or a physical device. */
  readonly devType?: string | undefined;
}

export type InterceptionState =
  | { readonly ok: true; readonly reason: '' }
  | {
      readonly ok: false;
      readonly reason: 'no_matching_interface' | 'unmatched_pod_interface';
      readonly detail: string;
    };

/** iptables `-i` semantics: a trailing `+` matches every name with that prefix, otherwise the exact name. */
export function interfaceMatches(pattern: string, name: string): boolean {
  return pattern.endsWith('+') ? name.startsWith(pattern.slice(0, -1)) : name === pattern;
}

/** Host ends of veth pairs whose peer is in another namespace, not enslaved to a bridge. */
export function podInterfaces(
  ifaces: readonly NetInterface[],
  uplinks: ReadonlySet<string> = new Set(),
): NetInterface[] {
  // ifindex is per namespace, so a pod-side index may equal a local one: a local pair points both ways.
  const byIndex = new Map(ifaces.map((i) => [i.ifindex, i]));
  const localPair = (i: NetInterface) => byIndex.get(i.iflink)?.iflink === i.ifindex;
  return ifaces.filter(
    (i) =>
      i.iflink !== i.ifindex &&
      !localPair(i) &&
      !i.hasMaster &&
      i.devType === undefined &&
      !uplinks.has(i.name),
  );
}

/**
 * The decision. `podsRunning` is the number of pods with their own network on this node (the pod view):
 * with none, an interface list that matches nothing is expected (a fresh node), so it is not a problem.
 */
export function assessInterception(
  patterns: readonly string[],
  ifaces: readonly NetInterface[],
  podsRunning: number,
  /** The node's own uplinks (interfaces holding the host address): never pod interfaces. */
  uplinks: ReadonlySet<string> = new Set(),
): InterceptionState {
  const spec = parseInterfaces(patterns);
  const intercepted = (name: string) => {
    const hit = spec.names.some((p) => interfaceMatches(p, name));
    return spec.mode === 'only' ? hit : !hit;
  };
  const unmatched = podInterfaces(ifaces, uplinks).filter((i) => !intercepted(i.name));
  if (unmatched.length > 0) {
    const names = unmatched.map((i) => i.name);
    return {
      ok: false,
      reason: 'unmatched_pod_interface',
      detail: `pod interfaces not matched by --interfaces=${patterns.join(',')}: ${names.slice(0, 5).join(', ')}${names.length > 5 ? ` and ${names.length - 5} more` : ''}`,
    };
  }
  if (podsRunning > 0 && spec.mode === 'only' && !ifaces.some((i) => intercepted(i.name))) {
    return {
      ok: false,
      reason: 'no_matching_interface',
      detail: `${podsRunning} pods run on this node but no interface matches --interfaces=${patterns.join(',')}`,
    };
  }
  return { ok: true, reason: '' };
}

/** The interfaces of the network namespace this process sees in sysfs (the host's, with hostNetwork). */
export async function readInterfaces(dir = '/sys/class/net'): Promise<NetInterface[]> {
  const names = await readdir(dir);
  const num = async (name: string, file: string) =>
    Number((await readFile(join(dir, name, file), 'utf8')).trim());
  const exists = (p: string) =>
    access(p).then(
      () => true,
      () => false,
    );
  const all = await Promise.all(
    names.map(async (name): Promise<NetInterface | undefined> => {
      try {
        return {
          name,
          ifindex: await num(name, 'ifindex'),
          iflink: await num(name, 'iflink'),
          hasMaster: await exists(join(dir, name, 'master')),
          devType: /^DEVTYPE=(.+)$/m.exec(
            await readFile(join(dir, name, 'uevent'), 'utf8').catch(() => ''),
          )?.[1],
        };
      } catch {
        return undefined; // the interface went away while we read it
      }
    }),
  );
  return all.filter((i): i is NetInterface => i !== undefined);
}

export interface InterceptionMonitorOptions {
  readonly patterns: readonly string[];
  /** Pods with their own network on this node (the pod view's imdsgate_pods_known). */
  readonly podsRunning: () => Promise<number>;
  readonly intervalMs: number;
  /** Called on every change of state, and once for the first state when it is not ok. */
  readonly onChange: (now: InterceptionState, before: InterceptionState | undefined) => void;
  readonly read?: () => Promise<NetInterface[]>;
  /** The node's own uplinks, asked at each check. */
  readonly uplinks?: () => ReadonlySet<string>;
  /** The interfaces could not be read (reported once until a read succeeds again). */
  readonly onReadError?: (err: Error) => void;
}

export interface InterceptionMonitor {
  /** The last check's result; undefined before the first one. */
  state(): InterceptionState | undefined;
  /** One check now (the first runs before start resolves); undefined when the interfaces cannot be read. */
  check(): Promise<InterceptionState | undefined>;
  stop(): void;
}

export async function startInterceptionMonitor(o: InterceptionMonitorOptions): Promise<InterceptionMonitor> {
  const read = o.read ?? (() => readInterfaces());
  let last: InterceptionState | undefined;
  let readFailed = false;
  const check = async () => {
    let ifaces: NetInterface[];
    try {
      ifaces = await read();
      readFailed = false;
    } catch (err) {
      // sysfs unreadable (an unusual container runtime): the check cannot run; say so once, keep the last
      // result rather than fail the agent or invent one.
      if (!readFailed) o.onReadError?.(err as Error);
      readFailed = true;
      return last;
    }
    const next = assessInterception(o.patterns, ifaces, await o.podsRunning(), o.uplinks?.());
    const before = last;
    last = next;
    const changed = before === undefined ? !next.ok : before.ok !== next.ok || before.reason !== next.reason;
    if (changed) o.onChange(next, before);
    return next;
  };
  await check();
  const timer = setInterval(() => void check().catch(() => undefined), o.intervalMs);
  timer.unref();
  return { state: () => last, check, stop: () => clearInterval(timer) };
}
