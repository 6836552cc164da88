// Network namespaces for interception tests. SAFETY (team brief): everything happens inside namespaces
// this module created, with link-local (169.254.0.0/16, fe80::/10) or loopback addresses only; the
// machine's own namespace is never given an address, a route or a firewall rule. Every namespace made
// here is recorded and deleted by cleanupNetns(), on process exit and on SIGINT/SIGTERM too; names
// carry the creating pid so sweepStaleNetns() can remove leftovers of a killed run.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { execa, type Options, type ResultPromise } from 'execa';

const PREFIX = 'igt';
const owned = new Set<string>();

/** Throws unless cidr is link-local or loopback (IPv4 or IPv6), per the safety rules. */
export function assertLinkLocal(cidr: string): void {
  const ip = cidr.split('/')[0] ?? '';
  const ok =
    /^169\.254\.\d+\.\d+$/.test(ip) || /^127\./.test(ip) || /^fe[89ab][0-9a-f]?:/i.test(ip) || ip === '::1';
  if (!ok)
    throw new Error(
      `refusing non-link-local test address ${cidr} (safety rule: 169.254/16 or loopback only)`,
    );
}

/** Runs a command inside a namespace; rejects with execa's error (stderr included) on failure. */
export function execIn(ns: string, cmd: string, args: readonly string[] = [], opts: Options = {}) {
  return execa('ip', ['netns', 'exec', ns, cmd, ...args], opts);
}

/** Starts a long-running command inside a namespace; the caller kills it (it is not awaited). */
export function spawnIn(
  ns: string,
  cmd: string,
  args: readonly string[] = [],
  opts: Options = {},
): ResultPromise {
  const child = execa('ip', ['netns', 'exec', ns, cmd, ...args], { reject: false, ...opts });
  return child;
}

/** `ip <args>` inside a namespace. */
export const ipIn = (ns: string, ...args: string[]) => execIn(ns, 'ip', args);

/** Creates a namespace named igt<pid>-<label>-<rand> with lo up; returns its name. */
export async function createNetns(label: string): Promise<string> {
  if (owned.size === 0) sweepStaleNetns();
  const name = `${PREFIX}${process.pid}-${label}-${randomBytes(2).toString('hex')}`;
  await execa('ip', ['netns', 'add', name]);
  owned.add(name);
  installExitHooks();
  await ipIn(name, 'link', 'set', 'lo', 'up');
  return name;
}

export async function deleteNetns(name: string): Promise<void> {
  owned.delete(name);
  removeNetns(name);
}

/** Kills what still runs inside, then deletes the namespace, which also removes its veth ends (and their
 *  peers) and its netfilter rules. Synchronous so it can run in an exit handler. */
function removeNetns(name: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean);
    for (const pid of pids) process.kill(Number(pid), 'SIGKILL');
  } catch {
    // namespace already gone, or a process exited meanwhile
  }
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

export interface VethEnd {
  ns: string;
  ifname: string;
  /** e.g. 169.254.10.1/30; must be link-local. Omit to leave the end unaddressed. */
  addr?: string;
}

/** Creates a veth pair directly between two of our namespaces (never in the host namespace). */
export async function veth(a: VethEnd, b: VethEnd): Promise<void> {
  for (const e of [a, b]) if (e.addr) assertLinkLocal(e.addr);
  for (const e of [a, b])
    if (!owned.has(e.ns)) throw new Error(`namespace ${e.ns} was not created by netns.ts`);
  await execa('ip', [
    'link',
    'add',
    a.ifname,
    'netns',
    a.ns,
    'type',
    'veth',
    'peer',
    'name',
    b.ifname,
    'netns',
    b.ns,
  ]);
  for (const e of [a, b]) {
    if (e.addr) await ipIn(e.ns, 'addr', 'add', e.addr, 'dev', e.ifname);
    await ipIn(e.ns, 'link', 'set', e.ifname, 'up');
  }
}

/** Adds a route inside a namespace (destination and gateway must be link-local or 'default'). */
export async function addRoute(ns: string, dest: string, via: string): Promise<void> {
  if (dest !== 'default') assertLinkLocal(dest);
  assertLinkLocal(via);
  await ipIn(ns, 'route', 'add', dest, 'via', via);
}

/** Adds a link-local address to a device of one of our namespaces, e.g. 169.254.169.254/32 on lo. */
export async function addAddress(ns: string, dev: string, cidr: string): Promise<void> {
  assertLinkLocal(cidr);
  if (!owned.has(ns)) throw new Error(`namespace ${ns} was not created by netns.ts`);
  await ipIn(ns, 'addr', 'add', cidr, 'dev', dev);
}

/** Lets a namespace route between its interfaces (its own sysctl, not the host's). */
export async function enableForwarding(ns: string): Promise<void> {
  await execIn(ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
}

/** Deletes every namespace this process created. Synchronous so it can run in an exit handler. */
export function cleanupNetns(): void {
  for (const name of owned) removeNetns(name);
  owned.clear();
}

/** Removes namespaces left by test processes that no longer run (e.g. killed with SIGKILL). */
export function sweepStaleNetns(): string[] {
  let names: string[] = [];
  try {
    names = readdirSync('/run/netns');
  } catch {
    return [];
  }
  const stale = names.filter((n) => {
    const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(n);
    return m !== null && !isAlive(Number(m[1]));
  });
  for (const n of stale) removeNetns(n);
  return stale;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

let hooked = false;
function installExitHooks(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', cleanupNetns);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      cleanupNetns();
      process.kill(process.pid, sig); // our listener is gone: the default action now ends the process
    });
  }
}
