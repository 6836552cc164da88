// Process and port helpers shared by run.mjs (the benchmark) and profile.mjs (one-scenario profiles).
/* global URL, fetch, setTimeout, setInterval, clearInterval */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';

export async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

export async function waitFor(url, ms = 20_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready`);
}

/** User+system CPU seconds of a process, from /proc (robust to other load on the machine). */
export const cpuSeconds = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};

export const rssMb = (pid) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

/**
 * The node flags the CLI ships with, from its shebang (`#!/usr/bin/env -S node FLAGS`), so that a
 * benchmark runs the agent exactly as the image does.
 */
export function shippedNodeFlags(mainJs) {
  const first = readFileSync(mainJs, 'utf8').split('\n', 1)[0];
  const m = /^#!\/usr\/bin\/env -S node((?: [^ ]+)*)$/.exec(first);
  if (m === null) throw new Error(`${mainJs}: unexpected first line ${first}`);
  return m[1].split(' ').filter(Boolean);
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Compiles the agent into dir/dist with the project's package.json and node_modules beside it; with a
 * git ref, the sources of that commit (a same-run baseline of an earlier design).
 */
export function build(dir, ref) {
  mkdirSync(dir, { recursive: true });
  let cwd = ROOT;
  if (ref !== undefined) {
    cwd = join(dir, 'src-ref');
    mkdirSync(cwd, { recursive: true });
    const tar = execFileSync(
      'git',
      ['archive', ref, 'src', 'package.json', 'tsconfig.json', 'tsconfig.build.json'],
      { cwd: ROOT, maxBuffer: 1 << 28 },
    );
    execFileSync('tar', ['-x', '-C', cwd], { input: tar });
    symlinkSync(join(ROOT, 'node_modules'), join(cwd, 'node_modules'));
  }
  execFileSync(
    join(ROOT, 'node_modules/.bin/tsc'),
    ['-p', 'tsconfig.build.json', '--outDir', join(dir, 'dist')],
    { cwd, stdio: 'inherit' },
  );
  writeFileSync(join(dir, 'package.json'), readFileSync(join(ROOT, 'package.json')));
  if (!existsSync(join(dir, 'node_modules')))
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
}

/** The agent's own gauges/counters: V8 heap used (MB) and GC seconds so far. */
export async function agentStats(metricsUrl) {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const sum = (re) => [...text.matchAll(re)].reduce((s, m) => s + Number(m[1]), 0);
  return {
    heapMb: sum(/^nodejs_heap_size_used_bytes (\S+)$/gm) / 2 ** 20,
    gcSeconds: sum(/^nodejs_gc_duration_seconds_sum\{[^}]*\} (\S+)$/gm),
  };
}

/** ns the agent's main thread has run and waited on a run queue (runnable, no core free): schedstat. */
export const sched = (pid) =>
  readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ').map(Number);

/** Samples what the main thread is blocked in (wchan) every 20 ms: epoll = idle, futex = a sleep/lock. */
export function wchanSampler(pid) {
  const seen = {};
  const t = setInterval(() => {
    let w = 'gone';
    try {
      w = readFileSync(`/proc/${pid}/task/${pid}/wchan`, 'utf8') || 'running';
    } catch {
      /* exited */
    }
    w = w === '0' ? 'running' : w.replace(/_.*$/, '');
    seen[w] = (seen[w] ?? 0) + 1;
  }, 20);
  return () => (clearInterval(t), seen);
}
