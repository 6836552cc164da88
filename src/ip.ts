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
