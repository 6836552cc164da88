// Long-running processes inside sandbox namespaces (AEMM, the loopback relay, the agent). Deleting a
// namespace does not stop the processes in it, so each is recorded and killed by killAll(), also from
// the exit hook netns.ts installs, before namespaces go.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';

export interface NetnsProcess {
  readonly pid: number;
  readonly logPath: string;
  log(): string;
  /** Resolves with the exit code (or signal name) once the process is gone. */
  readonly exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string>;
}

const running = new Map<number, ChildProcess>();

/** `ip netns exec` execs the command in place, so the pid we get is the command's own. */
export function spawnInNetns(
  ns: string,
  file: string,
  args: readonly string[],
  logPath: string,
): NetnsProcess {
  const fd = openSync(logPath, 'a');
  const child = spawn('ip', ['netns', 'exec', ns, file, ...args], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${file} in ${ns}`);
  const pid = child.pid;
  running.set(pid, child);
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => {
      running.delete(pid);
      resolve(code ?? signal ?? -1);
    }),
  );
  const log = () => readFileSync(logPath, 'utf8');
  return {
    pid,
    logPath,
    log,
    exited,
    async stop(signal = 'SIGTERM', graceMs = 5000) {
      if (!running.has(pid)) return exited;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}

/** Waits until check() is true, or throws with the process log when it exits or time runs out. */
export async function waitFor(
  what: string,
  proc: NetnsProcess,
  check: () => Promise<boolean>,
  timeoutMs = 30_000,
) {
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  void proc.exited.then(() => (gone = true));
  while (Date.now() < deadline) {
    if (await check()) return;
    if (gone) throw new Error(`${what} exited before it was ready:\n${proc.log().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms:\n${proc.log().slice(-3000)}`);
}

export function killAll(): void {
  for (const [pid] of running) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  running.clear();
}
