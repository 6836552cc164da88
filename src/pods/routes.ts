// The node's routing table as a SandboxLookup (sandbox.ts): which interface holds the host route (/32,
// /128) for a pod IP, and that interface's ifindex. Read from /proc and /sys without spawning a process or
// needing a netlink socket (Node has none): /proc/net/route is the IPv4 main table, /proc/net/ipv6_route
// every IPv6 table (formatted by fib_route_seq_show in the kernel's net/ipv4/fib_trie.c and
// ipv6_route_native_seq_show in net/ipv6/ip6_fib.c). Both are read afresh on every call: a snapshot older
// than the request could still show the previous sandbox's veth, which is the very case this guards
// against. The files stay open and are read from offset 0 each time (a seq_file restarts there), which
// costs about half of open-read-close (bench/binding measures it).
// The agent runs in the node's network namespace (hostNetwork), so these files describe the node.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { isIPv4 } from 'node:net';
import type { SandboxLookup, SandboxSignal } from './sandbox.js';

/** include/uapi/linux/route.h and ipv6_route.h: the route is up; it rejects (blackhole/unreachable). */
const RTF_UP = 0x1;
const RTF_REJECT = 0x200;
/** Interface names: at most 15 bytes, never a path (IFNAMSIZ, net/core/dev.c dev_valid_name). */
const IFNAME = /^[^/\s]{1,15}$/;

export interface RouteTableOptions {
  readonly procRoot?: string;
  readonly sysRoot?: string;
}

export function createRouteTable(o: RouteTableOptions = {}): SandboxLookup {
  const proc = o.procRoot ?? '/proc';
  const sys = o.sysRoot ?? '/sys';
  const little = endianness() === 'LE';
  const read = (path: string): string | undefined => {
    try {
      return readFileSync(path, 'latin1');
    } catch {
      return undefined;
    }
  };
  const v4Table = keptFile(`${proc}/net/route`);
  const v6Table = keptFile(`${proc}/net/ipv6_route`);
  return {
    signalFor(ip: string): SandboxSignal | undefined {
      const v4 = isIPv4(ip);
      const table = v4 ? v4Table() : v6Table();
      if (table === undefined) return undefined;
      const iface = v4 ? hostRouteV4(table, hexV4(ip, little)) : hostRouteV6(table, hexV6(ip));
      if (iface === undefined || !IFNAME.test(iface)) return undefined;
      const ifindex = Number.parseInt(read(`${sys}/class/net/${iface}/ifindex`) ?? '', 10);
      return Number.isInteger(ifindex) && ifindex > 0 ? { kind: 'route', ifindex, iface } : undefined;
    },
  };
}

/** A file kept open and read whole from offset 0 on every call; undefined (and reopened later) on error. */
function keptFile(path: string): () => string | undefined {
  let fd: number | undefined;
  let buf = Buffer.allocUnsafe(16 * 1024);
  return () => {
    try {
      fd ??= openSync(path, 'r');
      let n = 0;
      for (;;) {
        if (n === buf.length) buf = Buffer.concat([buf, Buffer.allocUnsafe(buf.length)]);
        const got = readSync(fd, buf, n, buf.length - n, n);
        if (got === 0) return buf.toString('latin1', 0, n);
        n += got;
      }
    } catch {
      const stale = fd;
      fd = undefined;
      if (stale !== undefined) closeQuietly(stale);
      return undefined;
    }
  };
}

/** The kernel prints the address as one u32 in host byte order (`%08X` of a __be32). */
export function hexV4(ip: string, little: boolean): string {
  const bytes = ip.split('.').map((b) => Number(b).toString(16).toUpperCase().padStart(2, '0'));
  return (little ? bytes.reverse() : bytes).join('');
}

/** 32 lower-case hex digits, as /proc/net/ipv6_route prints addresses. */
export function hexV6(ip: string): string {
  const [head = '', tail] = ip.split('::');
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const middle = Array<string>(8 - h.length - t.length).fill('0');
  return [...h, ...middle, ...t].map((g) => g.toLowerCase().padStart(4, '0')).join('');
}

/** Iface of the lowest-metric usable /32 route to dest in /proc/net/route text. */
export function hostRouteV4(table: string, dest: string): string | undefined {
  let best: { iface: string; metric: number } | undefined;
  for (const line of linesWith(table, `\t${dest}\t`)) {
    const f = line.split('\t').map((x) => x.trim());
    const [iface = '', d, , flags = '0', , , metric = '0', mask] = f;
    if (d !== dest || mask !== 'FFFFFFFF' || !usable(iface, Number.parseInt(flags, 16))) continue;
    const m = Number(metric);
    if (best === undefined || m < best.metric) best = { iface, metric: m };
  }
  return best?.iface;
}

/** Iface of the lowest-metric usable /128 route to dest in /proc/net/ipv6_route text. */
export function hostRouteV6(table: string, dest: string): string | undefined {
  let best: { iface: string; metric: number } | undefined;
  for (const line of linesWith(table, `${dest} 80 `)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[0] !== dest || f[1] !== '80') continue;
    const iface = f[9] ?? '';
    if (!usable(iface, Number.parseInt(f[8] ?? '0', 16))) continue;
    const m = Number.parseInt(f[5] ?? '0', 16);
    if (best === undefined || m < best.metric) best = { iface, metric: m };
  }
  return best?.iface;
}

function usable(iface: string, flags: number): boolean {
  return (flags & RTF_UP) !== 0 && (flags & RTF_REJECT) === 0 && iface !== 'lo' && iface !== '*';
}

/** The lines holding needle; a scan with indexOf, since most of a node's table is other pods' routes. */
function* linesWith(text: string, needle: string): Generator<string> {
  let at = text.indexOf(needle);
  while (at !== -1) {
    const start = text.lastIndexOf('\n', at) + 1;
    let end = text.indexOf('\n', at);
    if (end === -1) end = text.length;
    yield text.slice(start, end);
    at = text.indexOf(needle, end);
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
