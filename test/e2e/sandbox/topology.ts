// The sandbox's network: a "cloud" namespace that owns the metadata address, a "node" namespace where
// the agent and its rules live, and pod namespaces joined to the node by veth pairs, the way CNIs such as
// calico wire pods: the pod has a /32 address and a default route to a link-local gateway; the node has a
// /32 host route per pod through its veth (which is what makes the rpfilter anti-spoofing check work).
//
//   pod-i  eth0 169.254.10.(10+i)/32 ── veth vethpod<i> (node: 169.254.1.1/32, route 169.254.10.(10+i))
//   node   eth0 169.254.100.1/30 ─────── cloud eth0 169.254.100.2/30, lo 169.254.169.254/32
//
// Only link-local addresses, and every link is created directly inside the namespaces (`ip -n`), so the
// machine's own namespace never holds a sandbox interface, even for a moment.
import { execa } from 'execa';
import { createNetns, deleteNetns, netnsName } from './netns.js';

export const NODE_IP = '169.254.100.1';
export const CLOUD_IP = '169.254.100.2';
export const POD_GATEWAY = '169.254.1.1';
export const METADATA_IP = '169.254.169.254';
export const podIp = (i: number): string => `169.254.10.${10 + i}`;
// IPv6 (only with ipv6): ULA inside the sandbox namespaces, as the brief allows for IPv6 tests.
export const NODE_IP6 = 'fd00:100::1';
export const POD_GATEWAY6 = 'fd00:1::1';
export const METADATA_IP6 = 'fd00:ec2::254';
export const podIp6 = (i: number): string => `fd00:10::${(10 + i).toString(16)}`;

export interface Topology {
  readonly cloud: string;
  readonly node: string;
  /** netns of pod i, in the order asked for. */
  readonly pods: readonly {
    readonly netns: string;
    readonly ip: string;
    readonly ip6?: string;
    readonly veth: string;
  }[];
  destroy(): Promise<void>;
}

const ip = (ns: string, ...args: string[]) => execa('ip', ['-n', ns, ...args]);
const sysctl = (ns: string, kv: string) => execa('ip', ['netns', 'exec', ns, 'sysctl', '-qw', kv]);

export async function createTopology(
  podCount: number,
  backend: 'nft' | 'legacy' = 'nft',
  ipv6 = false,
): Promise<Topology> {
  const made: string[] = [];
  const destroy = async () => {
    for (const ns of made.reverse()) await deleteNetns(ns);
  };
  try {
    const cloud = await track(made, createNetns(netnsName('cloud')));
    const node = await track(made, createNetns(netnsName('node')));
    await ip(node, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', cloud);
    await ip(node, 'addr', 'add', `${NODE_IP}/30`, 'dev', 'eth0');
    await ip(node, 'link', 'set', 'eth0', 'up');
    await ip(cloud, 'addr', 'add', `${CLOUD_IP}/30`, 'dev', 'eth0');
    await ip(cloud, 'link', 'set', 'eth0', 'up');
    await ip(cloud, 'addr', 'add', `${METADATA_IP}/32`, 'dev', 'lo');
    await ip(cloud, 'route', 'add', 'default', 'via', NODE_IP);
    await ip(node, 'route', 'add', `${METADATA_IP}/32`, 'via', CLOUD_IP);
    // Forwarding lets a pod reach the cloud when no rule intercepts it (the fail-open contrast); the
    // kernel's own rp_filter is off so that dropping a spoofed source is proven to be our rule's work.
    await sysctl(node, 'net.ipv4.ip_forward=1');
    for (const k of ['all', 'default', 'eth0']) await sysctl(node, `net.ipv4.conf.${k}.rp_filter=0`);
    // Like a real node (aws-vpc-cni's AWS-SNAT-CHAIN, flannel, calico natOutgoing), pod traffic leaving
    // the node is masqueraded. That also means connection tracking is live before our rules exist, which
    // the "connection opened before the rules" test depends on, as on every real node.
    await execa('ip', [
      'netns',
      'exec',
      node,
      `iptables-${backend}`,
      '-w',
      '5',
      '-t',
      'nat',
      '-A',
      'POSTROUTING',
      '-o',
      'eth0',
      '-j',
      'MASQUERADE',
    ]);
    const pods = [];
    if (ipv6) await ip(node, '-6', 'addr', 'add', `${NODE_IP6}/128`, 'dev', 'lo');
    for (let i = 0; i < podCount; i++) pods.push(await addPod(made, node, i, ipv6));
    return { cloud, node, pods, destroy };
  } catch (err) {
    await destroy();
    throw err;
  }
}

async function addPod(made: string[], node: string, i: number, ipv6: boolean) {
  const netns = await track(made, createNetns(netnsName(`pod${i}`)));
  const veth = `vethpod${i}`;
  const addr = podIp(i);
  await ip(node, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns);
  await ip(node, 'addr', 'add', `${POD_GATEWAY}/32`, 'dev', veth);
  await ip(node, 'link', 'set', veth, 'up');
  await ip(node, 'route', 'add', `${addr}/32`, 'dev', veth);
  await sysctl(node, `net.ipv4.conf.${veth}.rp_filter=0`);
  await ip(netns, 'addr', 'add', `${addr}/32`, 'dev', 'eth0');
  await ip(netns, 'link', 'set', 'eth0', 'up');
  await ip(netns, 'route', 'add', POD_GATEWAY, 'dev', 'eth0', 'scope', 'link');
  await ip(netns, 'route', 'add', 'default', 'via', POD_GATEWAY, 'dev', 'eth0');
  if (!ipv6) return { netns, ip: addr, veth };
  // Same shape in IPv6: /128 on the pod, a host route per pod on the node (rpfilter needs it).
  const addr6 = podIp6(i);
  await ip(node, '-6', 'addr', 'add', `${POD_GATEWAY6}/128`, 'dev', veth, 'nodad');
  await ip(node, '-6', 'route', 'add', `${addr6}/128`, 'dev', veth);
  await ip(netns, '-6', 'addr', 'add', `${addr6}/128`, 'dev', 'eth0', 'nodad');
  await ip(netns, '-6', 'route', 'add', `${POD_GATEWAY6}/128`, 'dev', 'eth0');
  await ip(netns, '-6', 'route', 'add', 'default', 'via', POD_GATEWAY6, 'dev', 'eth0');
  return { netns, ip: addr, ip6: addr6, veth };
}

async function track(made: string[], p: Promise<string>): Promise<string> {
  const ns = await p;
  made.push(ns);
  return ns;
}
