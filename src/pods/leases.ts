// host-local IPAM's lease files as a SandboxLookup (sandbox.ts), the per-pod signal on bridge CNIs, which
// have no per-pod host route. host-local (used by the bridge plugin, flannel and kubenet) reserves an
// address by creating `<dataDir>/<network>/<ip>`, default dataDir /var/lib/cni/networks, whose first line
// is the container ID of the sandbox holding it (then, since CNI plugins v0.9, `\r\n` and the interface
// name); it is written during CNI ADD, before the kubelet can learn the pod's IP, and removed on DEL
// (https://www.cni.dev/plugins/current/ipam/host-local/, plugins/ipam/host-local/backend/disk/backend.go in
// github.com/containernetworking/plugins). So the sandbox a lease names when a connection is accepted is
// the sender's, or a later sandbox's: the same property routes.ts gives for a host route.
//
// The directory is the node's, mounted read-only (charts/imdsgate/templates/daemonset.yaml); no pod can
// write it. A file that is not exactly what host-local writes (too long, not a regular file, extra lines,
// an ID with other characters) is no signal at all, never a partly trusted one.
import { closeSync, constants, fstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { isIP } from 'node:net';
import type { SandboxLookup, SandboxSignal } from './sandbox.js';

/** A lease is an ID (64 hex digits on containerd and CRI-O), `\r\n` and an interface name: far below. */
export const MAX_LEASE_BYTES = 512;
/** Container IDs: the characters runtimes use (containerd's identifiers.Validate is stricter still). */
const SANDBOX_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;
/** IFNAMSIZ (net/core/dev.c dev_valid_name): at most 15 bytes, no slash or whitespace. */
const IFNAME = /^[^/\s]{1,15}$/;
/** A node has a handful of CNI networks; more directories than this is not host-local's layout. */
const MAX_NETWORKS = 64;
/** IP → the network directory that held its lease last; bounded like the quarantine (sandbox.ts). */
const MAX_CACHED = 4096;

/** Reads `<dir>/<network>/<ip>`; the network that held an IP is remembered, so a lookup is one read. */
export function createLeaseReader(dir: string): SandboxLookup {
  const networkOf = new Map<string, string>();
  return {
    signalFor(ip: string): SandboxSignal | undefined {
      // The IP names a file: only a real address may (no path separators, no `..`).
      if (isIP(ip) === 0) return undefined;
      const cached = networkOf.get(ip);
      if (cached !== undefined) {
        const got = readLease(`${dir}/${cached}/${ip}`);
        if (got !== 'absent') return got;
        networkOf.delete(ip);
      }
      for (const net of networks(dir)) {
        if (net === cached) continue;
        const got = readLease(`${dir}/${net}/${ip}`);
        if (got === 'absent') continue;
        if (networkOf.size >= MAX_CACHED) networkOf.clear();
        networkOf.set(ip, net);
        return got;
      }
      return undefined;
    },
  };
}

/** Route first (a CNI with per-pod routes), else the lease; either alone when the other is absent. */
export function firstSignal(...lookups: readonly SandboxLookup[]): SandboxLookup {
  return {
    signalFor(ip) {
      for (const l of lookups) {
        const s = l.signalFor(ip);
        if (s !== undefined) return s;
      }
      return undefined;
    },
  };
}

function networks(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
      .slice(0, MAX_NETWORKS)
      .map((e) => e.name);
  } catch {
    return [];
  }
}

/** The lease's sandbox, 'absent' when there is no such file, undefined when it is not a valid lease. */
export function readLease(path: string): SandboxSignal | undefined | 'absent' {
  let fd: number;
  try {
    // O_NOFOLLOW: host-local writes regular files; a symlink is not its lease. O_NONBLOCK: a FIFO
    // planted there could not hang the request path (it is then refused as not a regular file).
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'absent' : undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > MAX_LEASE_BYTES) return undefined;
    const buf = Buffer.alloc(MAX_LEASE_BYTES + 1);
    let n = 0;
    for (let got = -1; got !== 0 && n < buf.length; n += got) got = readSync(fd, buf, n, buf.length - n, n);
    return n > MAX_LEASE_BYTES ? undefined : parseLease(buf.toString('latin1', 0, n));
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** `<id>` or `<id>\r\n<ifname>` (either line break), nothing else. */
export function parseLease(text: string): SandboxSignal | undefined {
  const lines = text.split(/\r?\n/);
  if (lines.length > 2) return undefined;
  const [id = '', ifname] = lines;
  if (!SANDBOX_ID.test(id)) return undefined;
  if (ifname !== undefined && ifname !== '' && !IFNAME.test(ifname)) return undefined;
  return { kind: 'lease', sandboxId: id };
}
