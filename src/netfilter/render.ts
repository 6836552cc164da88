// Desired interception rules as data, and the iptables-restore text that installs or removes them.
// Pure: no I/O, so every option is pinned by a table-driven test as exact text.
//
// Per address family there are two chains of our own, each jumped to from its table's PREROUTING:
//   raw IMDSGATE-ANTISPOOF: drops metadata-bound packets whose source fails the reverse-path check
//   nat IMDSGATE:           DNATs metadata-bound TCP from pod interfaces to the agent
// Owning the chains is what makes applying atomic and local: `iptables-restore --noflush` with
// `:CHAIN - [0:0]` flushes and refills that chain only, in one commit, and touches nobody else's rules.
//
// Why anti-spoofing lives in raw PREROUTING: it runs before conntrack and before nat PREROUTING, so a
// spoofed packet is dropped before it creates a conntrack entry or reaches the DNAT, and its destination
// is still the metadata address. `-m rpfilter` (strict mode) looks the source up in the routing table with
// the incoming interface as output interface: the packet passes only if the reply would leave through the
// interface it came in on. CNIs install one host route per pod through its veth (calico, aws-vpc-cni,
// cilium with legacy host routing), so a pod that borrows another pod's IP fails the check. Behind a
// bridge (cni0) the check can only say "from the bridge"; pods on one bridge rely on the bridge's own
// ARP/MAC protections (Azure/aad-pod-identity docs on kubenet ARP spoofing). The rp_filter sysctl would do
// the same for all traffic of an interface; the match limits it to metadata traffic and changes nothing else.
import { hostPort } from '../host-port.js';
import { canonicalIpv6, ipFamily, isLoopback, isUnspecified } from '../ip.js';
import { NetfilterError } from './errors.js';

export type Family = 'ipv4' | 'ipv6';
export type Table = 'raw' | 'nat';

/** Applied in this order: protection before redirection, so a failure half-way never leaves DNAT alone. */
export const TABLES: readonly Table[] = ['raw', 'nat'];
export const CHAINS: Readonly<Record<Table, string>> = { raw: 'IMDSGATE-ANTISPOOF', nat: 'IMDSGATE' };
/** IMDS answers on fd00:ec2::254 on Nitro instances with IPv6 enabled (EC2 user guide, "IMDS endpoints"). */
export const METADATA_ADDRESS: Readonly<Record<Family, string>> = {
  ipv4: '169.254.169.254',
  ipv6: 'fd00:ec2::254',
};
export const METADATA_PORT = 80;

export interface RuleOptions {
  readonly interfaces: readonly string[];
  readonly listen: string;
  readonly hostIp?: string | undefined;
  readonly hostIpv6?: string | undefined;
  readonly ipv6: boolean;
}

/** Rule specs exactly as `iptables -S` prints them, without the leading `-A CHAIN `. */
export interface FamilyRules {
  readonly family: Family;
  readonly chains: Readonly<Record<Table, readonly string[]>>;
}

// Linux interface names are at most 15 bytes (IFNAMSIZ 16 with the NUL); iptables counts the `+` too.
const IFACE = /^(?=.{1,15}$)[A-Za-z0-9_.@-]+\+?$/;
const COMMENT: Readonly<Record<Table, string>> = {
  raw: '-m comment --comment "imdsgate: spoofed pod source"',
  nat: '-m comment --comment "imdsgate: pod metadata to agent"',
};
const SKIP_COMMENT = '-m comment --comment "imdsgate: not a pod interface"';
const NO_TARGET_COMMENT = '-m comment --comment "imdsgate: no node address of this family"';

/**
 * The families intercepted: IPv4 always, IPv6 with opts.ipv6 or on an IPv6-only node (where pods would
 * otherwise reach [fd00:ec2::254] and the node's role unasked).
 */
export function interceptedFamilies(opts: RuleOptions): Family[] {
  return opts.ipv6 || ipv6Only(opts) ? ['ipv4', 'ipv6'] : ['ipv4'];
}

/**
 * An IPv6-only node: an IPv6 node address and no IPv4 one. There IPv4 has no DNAT target, so its rules
 * drop pod metadata traffic instead (fail closed): an EKS IPv6 node still reaches 169.254.169.254 over
 * IPv4, and so would its pods (https://docs.aws.amazon.com/eks/latest/userguide/cni-ipv6.html).
 */
export function ipv6Only(opts: RuleOptions): boolean {
  const { host } = hostPort(opts.listen);
  const named = (family: Family) => ipFamily(host) === family && !isUnspecified(host);
  return opts.hostIp === undefined && !named('ipv4') && (opts.hostIpv6 !== undefined || named('ipv6'));
}

/** The rules for every intercepted family (interceptedFamilies). */
export function desiredRules(opts: RuleOptions): FamilyRules[] {
  const ifaces = parseInterfaces(opts.interfaces);
  return interceptedFamilies(opts).map((family) => {
    if (family === 'ipv4' && ipv6Only(opts)) {
      return {
        family,
        chains: { raw: chainRules(family, ifaces, `${NO_TARGET_COMMENT} -j DROP`), nat: [] },
      };
    }
    const target = dnatTarget(family, opts);
    return {
      family,
      chains: {
        raw: chainRules(family, ifaces, '-m rpfilter --invert ' + COMMENT.raw + ' -j DROP'),
        nat: chainRules(family, ifaces, `${COMMENT.nat} -j DNAT --to-destination ${target}`),
      },
    };
  });
}

interface Interfaces {
  readonly mode: 'only' | 'except';
  readonly names: readonly string[];
}

/** `veth+,cni0` intercepts those; `!eth0,!ens5` intercepts every interface but those (as kiam does). */
export function parseInterfaces(patterns: readonly string[]): Interfaces {
  if (patterns.length === 0) throw new NetfilterError('config', '--interfaces: at least one pattern needed');
  const negated = patterns.filter((p) => p.startsWith('!'));
  if (negated.length > 0 && negated.length < patterns.length) {
    throw new NetfilterError(
      'config',
      `--interfaces: mix of "!name" and "name" (${patterns.join(',')}); use either all excluded or all included`,
    );
  }
  const names = patterns.map((p) => (p.startsWith('!') ? p.slice(1) : p));
  for (const n of names) {
    if (!IFACE.test(n)) {
      throw new NetfilterError(
        'config',
        `--interfaces: "${n}" is not an interface name or pattern (1-15 of [A-Za-z0-9_.@-], optional trailing +)`,
      );
    }
  }
  return { mode: negated.length > 0 ? 'except' : 'only', names };
}

function chainRules(family: Family, ifaces: Interfaces, tail: string): string[] {
  const bits = family === 'ipv4' ? 32 : 128;
  const dst = `-d ${METADATA_ADDRESS[family]}/${bits}`;
  const tcp = `-p tcp -m tcp --dport ${METADATA_PORT}`;
  if (ifaces.mode === 'only') return ifaces.names.map((n) => `${dst} -i ${n} ${tcp} ${tail}`);
  return [
    ...ifaces.names.map((n) => `${dst} -i ${n} ${tcp} ${SKIP_COMMENT} -j RETURN`),
    `${dst} ${tcp} ${tail}`,
  ];
}

/** `ADDR:PORT` (IPv6 `[ADDR]:PORT`) the pods are sent to: the host address and the agent's listen port. */
export function dnatTarget(family: Family, opts: RuleOptions): string {
  const { host, port } = hostPort(opts.listen);
  const listenFamily: Family | undefined = ipFamily(host);
  const explicit = family === 'ipv4' ? opts.hostIp : opts.hostIpv6;
  const flag = family === 'ipv4' ? '--host-ip' : '--host-ipv6';
  const addr = explicit ?? (listenFamily === family ? host : undefined);
  if (addr === undefined || isUnspecified(addr)) {
    throw new NetfilterError(
      'config',
      `${flag} is required: --listen ${opts.listen} does not name one ${family} address the rules can DNAT to`,
    );
  }
  // The kernel drops packets DNATed from another interface to 127.0.0.0/8 unless route_localnet=1.
  if (isLoopback(addr) || isMetadata(addr)) {
    throw new NetfilterError(
      'config',
      `${flag} ${addr}: must be a node address reachable from pods (not loopback, not the metadata address)`,
    );
  }
  // Bind where the DNAT points: a socket on one family's address never receives the other family's
  // packets; only [::] (IPV6_V6ONLY off, Node's default: https://nodejs.org/api/net.html) takes both.
  const listensForFamily = listenFamily === undefined || listenFamily === family || host === '::';
  if (!listensForFamily) {
    throw new NetfilterError(
      'config',
      `--listen ${opts.listen} receives no ${family} traffic, so the ${family} DNAT would reach nothing: listen on [::]:${port} (chart: bindAddress "::")`,
    );
  }
  return family === 'ipv4' ? `${addr}:${port}` : `[${canonicalIpv6(addr)}]:${port}`;
}

const isMetadata = (a: string) => a === METADATA_ADDRESS.ipv4 || canonicalIpv6(a) === METADATA_ADDRESS.ipv6;

/** What `iptables -S CHAIN` prints when the chain holds exactly the desired rules. */
export function expectedListing(rules: FamilyRules, table: Table): string[] {
  const chain = CHAINS[table];
  return [`-N ${chain}`, ...rules.chains[table].map((r) => `-A ${chain} ${r}`)];
}

/** Our jump as `iptables -S PREROUTING` prints it; only this exact unconditional form counts as ours. */
export const jumpRule = (table: Table): string => `-A PREROUTING -j ${CHAINS[table]}`;

/**
 * iptables-restore input (for `--noflush`) that sets our chains to the desired rules in one commit per
 * table; the jump is inserted at the top of PREROUTING only where it is missing, so applying twice
 * never duplicates it.
 */
export function restoreText(rules: FamilyRules, jumpMissing: Readonly<Record<Table, boolean>>): string {
  const lines: string[] = [];
  for (const table of TABLES) {
    const chain = CHAINS[table];
    lines.push(`*${table}`, `:${chain} - [0:0]`, ...rules.chains[table].map((r) => `-A ${chain} ${r}`));
    if (jumpMissing[table]) lines.push(`-I PREROUTING 1 -j ${chain}`);
    lines.push('COMMIT');
  }
  return `${lines.join('\n')}\n`;
}

export interface InstalledState {
  readonly chainExists: boolean;
  readonly jumps: number;
}

/**
 * iptables-restore input that removes our jumps and chains, given what is installed now; '' when
 * nothing of ours is there. Redirection goes first (nat), then protection (raw): the reverse of installing.
 */
export function uninstallText(state: Readonly<Record<Table, InstalledState>>): string {
  const lines: string[] = [];
  for (const table of [...TABLES].reverse()) {
    const { chainExists, jumps } = state[table];
    if (!chainExists && jumps === 0) continue;
    const chain = CHAINS[table];
    lines.push(`*${table}`);
    for (let i = 0; i < jumps; i++) lines.push(`-D PREROUTING -j ${chain}`);
    if (chainExists) lines.push(`:${chain} - [0:0]`, `-X ${chain}`);
    lines.push('COMMIT');
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}
