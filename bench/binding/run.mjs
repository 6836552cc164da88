// Cost of the sandbox binding (src/pods/sandbox.ts, routes.ts) per request: a network namespace of our own
// with one veth per pod and one /32 host route per pod (link-local addresses only), and check.mjs run
// inside it, so the route read is the real kernel's /proc and /sys. Reports medians over rounds of the
// CPU per lookup with the binding off, in quarantine and in auto (route) mode (new connection per request
// and keep-alive), their ratio to off in the
// same run, and the bare route read. BENCH_NODE=bridge: no host routes, host-local lease files in a
// temporary directory instead (auto binds by lease; src/pods/leases.ts).
// Bounded: BENCH_PODS (110), BENCH_CALLS (20,000) x BENCH_ROUNDS (7).
// Needs root (ip netns) and `npm run build`. The namespace is deleted on exit.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { URL } from 'node:url';

const ROOT = new URL('../..', import.meta.url).pathname;
const PODS = Number(process.env.BENCH_PODS ?? 110);
const CALLS = Number(process.env.BENCH_CALLS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const NS = `ig-${process.pid.toString(36)}-bench`;
const BRIDGE = process.env.BENCH_NODE === 'bridge';
const LEASES = BRIDGE ? mkdtempSync('/tmp/imdsgate-bench-leases-') : '';

const ip = (...args) => execFileSync('ip', args, { stdio: ['pipe', 'pipe', 'inherit'] });
const cleanup = () => {
  try {
    execFileSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
  } catch {
    // not there
  }
};
process.on('exit', cleanup);
if (BRIDGE) process.on('exit', () => rmSync(LEASES, { recursive: true, force: true }));

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
ip('netns', 'add', NS);
const batch = [];
for (let i = 0; i < PODS; i++) {
  batch.push(
    `link add pod${i} type veth peer name peer${i}`,
    `link set pod${i} up`,
    ...(BRIDGE ? [] : [`route add 169.254.20.${10 + i}/32 dev pod${i}`]),
  );
}
// A bridge node: the pods' subnet routed through one bridge, no route per pod.
if (BRIDGE) batch.push('link add cni0 type bridge', 'link set cni0 up', 'route add 169.254.20.0/24 dev cni0');
execFileSync('ip', ['-n', NS, '-batch', '-'], { input: batch.join('\n') + '\n' });
const load = loadavg()[0].toFixed(2);
const raw = execFileSync(
  'ip',
  [
    'netns',
    'exec',
    NS,
    process.execPath,
    `${ROOT}bench/binding/check.mjs`,
    `${ROOT}dist`,
    PODS,
    CALLS,
    ROUNDS,
    ...(BRIDGE ? [LEASES] : []),
  ],
  { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
);
const res = JSON.parse(raw.trim().split('\n').pop());
const off = median(res.off.map((r) => r.cpuUs));
console.log(
  `${BRIDGE ? 'bridge node (leases), ' : ''}pods ${PODS}, ${CALLS} lookups x ${ROUNDS} rounds, load average at start ${load}`,
);
console.log('| variant | CPU per lookup, median (µs) | rounds (µs) | ratio to off |');
console.log('|---|---|---|---|');
for (const k of ['off', 'quarantine', 'auto', 'autoKeepAlive', 'routeRead']) {
  const xs = res[k].map((r) => r.cpuUs);
  const m = median(xs);
  const ratio = k === 'routeRead' ? '' : (m / off).toFixed(2);
  console.log(`| ${k} | ${m.toFixed(2)} | ${xs.map((x) => x.toFixed(1)).join(' ')} | ${ratio} |`);
}
