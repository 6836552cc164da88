// Benchmark of the interception path, in network namespaces of its own (root; link-local only; nothing
// in the machine's own namespace changes):
//   1. latency added by the DNAT hop: the same tiny HTTP server in the node namespace, reached from a pod
//      namespace directly (169.254.100.1:8181) and through the real rules (169.254.169.254:80), in
//      alternating blocks so drift hits both alike; new connection per request and kept-alive;
//   2. CPU cost of the reconcile loop at idle, per backend, against the same process idling without it.
// usage: npm run build && node bench/dnat/run.mjs [--count=2000] [--blocks=4] [--seconds=30]
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { URL, fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')));
const COUNT = Math.min(Number(args.count ?? 2000), 20_000);
const BLOCKS = Math.min(Number(args.blocks ?? 4), 10);
const SECONDS = Math.min(Number(args.seconds ?? 30), 120);
const tag = process.pid.toString(36);
const NODE = `ig-${tag}-bnode`;
const POD = `ig-${tag}-bpod`;
const made = [];
const procs = [];

const sh = (cmd, argv, opts = {}) => execFileSync(cmd, argv, { encoding: 'utf8', ...opts });
const inNs = (ns, cmd, argv) => sh('ip', ['netns', 'exec', ns, cmd, ...argv]);

function cleanup() {
  for (const p of procs) p.kill('SIGKILL');
  for (const ns of made.reverse()) {
    try {
      sh('ip', ['netns', 'del', ns]);
    } catch {
      // already gone
    }
  }
  made.length = 0;
}
process.once('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM']) process.once(s, () => process.exit(130));

function topology() {
  for (const ns of [NODE, POD]) {
    sh('ip', ['netns', 'add', ns]);
    made.push(ns);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  sh('ip', ['-n', NODE, 'link', 'add', 'vethb0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', POD]);
  sh('ip', ['-n', NODE, 'addr', 'add', '169.254.1.1/32', 'dev', 'vethb0']);
  sh('ip', ['-n', NODE, 'addr', 'add', '169.254.100.1/32', 'dev', 'lo']); // the "host IP"
  sh('ip', ['-n', NODE, 'link', 'set', 'vethb0', 'up']);
  sh('ip', ['-n', NODE, 'route', 'add', '169.254.10.10/32', 'dev', 'vethb0']);
  sh('ip', ['-n', POD, 'addr', 'add', '169.254.10.10/32', 'dev', 'eth0']);
  sh('ip', ['-n', POD, 'link', 'set', 'eth0', 'up']);
  sh('ip', ['-n', POD, 'route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link']);
  sh('ip', ['-n', POD, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0']);
}

async function startServer() {
  const p = spawn('ip', [
    'netns',
    'exec',
    NODE,
    process.execPath,
    `${ROOT}bench/dnat/server.mjs`,
    '0.0.0.0',
    '8181',
  ]);
  procs.push(p);
  await new Promise((resolve, reject) => {
    p.stdout.once('data', resolve);
    p.once('exit', () => reject(new Error('server exited')));
  });
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
function summary(us) {
  const s = [...us].sort((a, b) => a - b);
  return { n: s.length, p50: pct(s, 50), p99: pct(s, 99) };
}

function latency(mode) {
  const all = { direct: [], dnat: [] };
  for (let b = 0; b < BLOCKS; b++) {
    for (const [path, url] of [
      ['direct', 'http://169.254.100.1:8181/'],
      ['dnat', 'http://169.254.169.254/'],
    ]) {
      const out = inNs(POD, process.execPath, [`${ROOT}bench/dnat/client.mjs`, url, String(COUNT), mode]);
      all[path].push(...JSON.parse(out));
    }
  }
  return { direct: summary(all.direct), dnat: summary(all.dnat) };
}

function guardCpu(backend) {
  const out = inNs(NODE, process.execPath, [
    `${ROOT}bench/dnat/guard-cpu.mjs`,
    `--backend=${backend}`,
    `--seconds=${SECONDS}`,
  ]);
  return JSON.parse(out.trim().split('\n').pop());
}

topology();
await startServer();
sh('ip', [
  'netns',
  'exec',
  NODE,
  process.execPath,
  `${ROOT}dist/main.js`,
  'rules',
  '--apply',
  '--host-ip=169.254.100.1',
  '--interfaces=veth+',
  '--iptables-backend=nft',
  '--log-level=warn',
]);
const results = {
  machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, ${os.release()}, node ${process.version}`,
  count: COUNT * BLOCKS,
  latencyUs: { close: latency('close'), keepalive: latency('keepalive') },
  guardCpu: { baseline: guardCpu('none'), nft: guardCpu('nft'), legacy: guardCpu('legacy') },
};
cleanup();
mkdirSync(`${ROOT}bench/results`, { recursive: true });
writeFileSync(`${ROOT}bench/results/dnat-${Date.now()}.json`, `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
