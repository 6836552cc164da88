// IP addresses: the one place that decides what an address is and how it is spelled, for the flags
// (--host-ip, --host-ipv6), the rules (netfilter/render.ts), the pod view and the identity file. IPv6 is
// compared in its RFC 5952 form (https://www.rfc-editor.org/rfc/rfc5952), which is also what
// `ip6tables -S` prints; an IPv4-mapped IPv6 address (::ffff:a.b.c.d, RFC 4291 §2.5.5.2), as a dual-stack
// socket reports an IPv4 peer, is that IPv4 address. Pure functions.
import { isIP } from 'node:net';

export type IpFamily = 'ipv4' | 'ipv6';

export function ipFamily(addr: string): IpFamily | undefined {
  const f = isIP(addr);
  return f === 4 ? 'ipv4' : f === 6 ? 'ipv6' : undefined;
}

/** RFC 5952 form of an IPv6 address (lower case, zeros compressed); IPv4 unchanged. */
export function canonicalIpv6(addr: string): string {
  return addr.includes(':') ? new URL(`http://[${addr}]/`).hostname.slice(1, -1) : addr;
}

/** A pod IP as the pod view keys it: brackets and IPv4 mapping removed, IPv6 canonical; undefined if not an IP. */
export function canonicalIp(raw: string): string | undefined {
  let ip = raw.trim();
  if (ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped?.[1] !== undefined) ip = mapped[1];
  const family = ipFamily(ip);
  if (family === 'ipv4') return ip;
  if (family === undefined) return undefined;
  return canonicalIpv6(ip);
}

/** `::ffff:10.0.0.5` (an IPv4 caller on a dual-stack socket) is 10.0.0.5; anything else unchanged. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

export const isUnspecified = (a: string): boolean => a === '0.0.0.0' || canonicalIpv6(a) === '::';
/** 127.0.0.0/8 and ::1: the kernel drops packets DNATed there from another interface (route_localnet). */
export const isLoopback = (a: string): boolean => a.startsWith('127.') || canonicalIpv6(a) === '::1';

export interface HostAddresses {
  readonly hostIp?: string | undefined;
  readonly hostIpv6?: string | undefined;
  readonly hostIps?: readonly string[] | undefined;
}

/**
 * The node's address per family, from --host-ip (either family: on an IPv6-only node the Downward API's
 * status.hostIP is IPv6), --host-ipv6 and --host-ips (status.hostIPs: one address per family, primary
 * first; https://kubernetes.io/docs/concepts/workloads/pods/downward-api/). An explicit flag wins over the
 * list; two different addresses for one family are a problem, never a guess. IPv6 in RFC 5952 form.
 */
export function resolveHostAddresses(a: HostAddresses): {
  readonly hostIp?: string;
  readonly hostIpv6?: string;
  readonly problems: string[];
} {
  const problems: string[] = [];
  const byFamily: Partial<Record<IpFamily, string>> = {};
  const put = (family: IpFamily, addr: string, what: string) => {
    const prev = byFamily[family];
    if (prev !== undefined && canonicalIpv6(prev) !== canonicalIpv6(addr)) {
      problems.push(`${what}: ${addr} and ${prev} are two ${family} node addresses; give one`);
    } else byFamily[family] ??= canonicalIpv6(addr);
  };
  if (a.hostIpv6 !== undefined) put('ipv6', a.hostIpv6, '--host-ip / --host-ipv6');
  const ipFlagFamily = a.hostIp === undefined ? undefined : ipFamily(a.hostIp);
  if (a.hostIp !== undefined && ipFlagFamily !== undefined)
    put(ipFlagFamily, a.hostIp, '--host-ip / --host-ipv6');
  const fromList: Partial<Record<IpFamily, string>> = {};
  for (const addr of a.hostIps ?? []) {
    const family = ipFamily(addr);
    if (family === undefined) problems.push(`--host-ips: ${JSON.stringify(addr)} is not an IP address`);
    else if (fromList[family] !== undefined) problems.push(`--host-ips: more than one ${family} address`);
    else fromList[family] = addr;
  }
  for (const family of ['ipv4', 'ipv6'] as const) {
    const listed = fromList[family];
    if (listed !== undefined) byFamily[family] ??= canonicalIpv6(listed);
  }
  return {
    ...(byFamily.ipv4 !== undefined ? { hostIp: byFamily.ipv4 } : {}),
    ...(byFamily.ipv6 !== undefined ? { hostIpv6: byFamily.ipv6 } : {}),
    problems,
  };
}
