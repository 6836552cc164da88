// Network namespaces for the e2e suite and the demo. Every rule change in these tests happens inside a
// namespace created here; nothing ever touches the machine's own namespace. Each namespace is recorded
// when created and deleted by cleanupAll(), which also runs on process exit and on SIGINT/SIGTERM, so a
// failed or interrupted run leaves nothing behind (deleting a netns also drops its iptables rules, veths
// and conntrack table).
import { execFileSync } from 'node:child_process';
import { execa } from 'execa';
import { NetfilterError } from '../../../src/netfilter/errors.js';
import { missingBinary, type CommandRunner } from '../../../src/netfilter/runner.js';
import { killAll } from './processes.js';

const created = new Set<string>();
let hooked = false;

/** ig-<pid36>-<role>: ours, and reapable once that process is gone (see reapStale). */
export function netnsName(role: string): string {
  return `ig-${process.pid.toString(36)}-${role}`;
}

export async function createNetns(name: string): Promise<string> {
  if (!/^ig-[0-9a-z]+-[a-z0-9]{1,12}$/.test(name)) throw new Error(`netns name ${name}: use netnsName()`);
  hookExit();
  await execa('ip', ['netns', 'add', name]);
  created.add(name);
  await execa('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

/** Deletes our namespaces left by a process that died without cleaning up (SIGKILL, OOM). */
export async function reapStale(): Promise<string[]> {
  const { stdout } = await execa('ip', ['netns', 'list']);
  const stale = stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => {
      const m = /^ig-([0-9a-z]+)-[a-z0-9]+$/.exec(n);
      return m !== null && !alive(parseInt(m[1]!, 36));
    });
  for (const n of stale) await execa('ip', ['netns', 'del', n], { reject: false });
  return stale;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function deleteNetns(name: string): Promise<void> {
  created.delete(name);
  await execa('ip', ['netns', 'del', name], { reject: false });
}

/** Synchronous so it can run from an 'exit' handler. */
export function cleanupAll(): void {
  killAll(); // processes first: a deleted namespace keeps running whatever is inside it
  for (const name of [...created]) {
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    } catch {
      // already gone
    }
    created.delete(name);
  }
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', cleanupAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      cleanupAll();
      process.exit(130);
    });
  }
}

/** Runs a command inside ns; resolves with its result whatever the exit code. */
export async function inNetns(ns: string, file: string, args: readonly string[], input?: string) {
  const r = await execa('ip', ['netns', 'exec', ns, file, ...args], {
    reject: false,
    env: { LC_ALL: 'C' },
    ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
    timeout: 60_000,
  });
  return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Like inNetns but throws with stderr on a non-zero exit. */
export async function mustInNetns(ns: string, file: string, args: readonly string[]): Promise<string> {
  const r = await inNetns(ns, file, args);
  if (r.exitCode !== 0) throw new Error(`[${ns}] ${file} ${args.join(' ')}: exit ${r.exitCode}: ${r.stderr}`);
  return r.stdout;
}

/** The CommandRunner the guard uses, but every command runs inside ns. */
export function netnsRunner(ns: string): CommandRunner {
  return {
    async run(file, args, input) {
      const r = await inNetns(ns, file, args, input);
      // `ip netns exec` reports a missing binary itself, with exit 255.
      if (r.exitCode === 255 && /exec of .* failed: No such file/.test(r.stderr)) throw missingBinary(file);
      if (r.exitCode === -1) throw new NetfilterError('apply', `${file}: did not run in ${ns}`);
      return r;
    },
  };
}
