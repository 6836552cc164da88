// vitest globalSetup of the integration and e2e projects: makes sure the real test environment is up
// (test/env/up is idempotent and takes seconds when cached), and tears it down afterwards only if this
// run started it and no other test process on the machine still holds a lease on it.
// Never skips: a missing prerequisite or a failed `up` fails the run (with CI=true, and outside it too).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { cacheDir, REPO_ROOT } from './index.js';

/** Tools the tests call directly (test/env/up checks its own). .ci/run installs them from Debian. */
const HOST_TOOLS = [
  'ip',
  'iptables',
  'iptables-legacy',
  'iptables-nft',
  'conntrack',
  'curl',
  'openssl',
  'promtool',
];

interface Shared {
  refs: number;
  started: boolean;
}
const shared: Shared = ((globalThis as { __imdsgateTestenv?: Shared }).__imdsgateTestenv ??= {
  refs: 0,
  started: false,
});

const script = (name: string) => join(REPO_ROOT, 'test/env', name);
const leaseDir = () => join(cacheDir(), 'leases');

export default async function setup(): Promise<() => Promise<void>> {
  process.env.IMDSGATE_TESTENV_CACHE = cacheDir(); // workers resolve the same state file
  await checkHostTools();
  shared.refs++;
  mkdirSync(leaseDir(), { recursive: true });
  writeFileSync(join(leaseDir(), String(process.pid)), '');
  const wasUp = (await execa('bash', [script('status')], { reject: false })).exitCode === 0;
  if (!wasUp) {
    const r = await execa('bash', [script('up')], { reject: false, stdout: 'inherit', stderr: 'inherit' });
    if (r.exitCode !== 0) {
      throw new Error(
        `test environment failed to come up (test/env/up exited ${r.exitCode}); see output above`,
      );
    }
    shared.started = true;
  }
  return teardown;
}

async function teardown(): Promise<void> {
  if (--shared.refs > 0) return;
  rmSync(join(leaseDir(), String(process.pid)), { force: true });
  if (!shared.started || process.env.IMDSGATE_TESTENV_KEEP === '1') return;
  const others = readdirSync(leaseDir()).filter((p) => isAlive(Number(p)));
  if (others.length > 0) return; // someone else is still using it; they or testenv:down stop it
  execFileSync('bash', [script('down')], { stdio: 'inherit' });
}

async function checkHostTools(): Promise<void> {
  const missing: string[] = [];
  for (const t of HOST_TOOLS) {
    const r = await execa('sh', ['-c', `command -v ${t}`], { reject: false });
    if (r.exitCode !== 0) missing.push(t);
  }
  if (missing.length === 0) return;
  const msg = `test environment prerequisites missing: ${missing.join(', ')} (bash .ci/run installs them)`;
  if (process.env.CI === 'true') throw new Error(msg);
  console.warn(`WARNING: ${msg}; tests that need them will fail`);
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
