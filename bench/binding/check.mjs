// Runs INSIDE the benchmark's network namespace (run.mjs), so /proc/net/route and /sys/class/net are that
// namespace's: 110 pods, each a /32 host route through its own interface, as on a calico or aws-vpc-cni
// node. Measures the CPU of the pod lookup (watcher.byIp, the request path's identity step) per request
// with --sandbox-binding off, quarantine and auto (a new connection per request, and keep-alive: one
// connection per pod), round-robin in one process, plus the bare route read.
// With a sixth argument (a directory), the node is a bridge node instead: no host route per pod, and
// host-local lease files (src/pods/leases.ts) for every pod in <dir>/bench-net/; auto then binds by lease
// and the bare read is the route miss plus the lease read.
import { mkdirSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Registry } from 'prom-client';

const dist = process.argv[2];
const PODS = Number(process.argv[3]);
const CALLS = Number(process.argv[4]);
const ROUNDS = Number(process.argv[5]);
const LEASES = process.argv[6];
const { startPodWatcher } = await import(`${dist}/pods/watcher.js`);
const { createRouteTable } = await import(`${dist}/pods/routes.js`);
const { createLeaseReader, firstSignal } = await import(`${dist}/pods/leases.js`);
const { createMetrics } = await import(`${dist}/metrics.js`);
const { createLogger } = await import(`${dist}/logger.js`);

const ip = (i) => `169.254.20.${10 + i}`;
const pods = Array.from({ length: PODS }, (_, i) => ({
  metadata: { name: `p${i}`, namespace: 'bench', uid: `u${i}`, resourceVersion: '1' },
  spec: { nodeName: 'n', serviceAccountName: 'sa' },
  status: { phase: 'Running', podIP: ip(i) },
}));
const client = {
  server: 'http://bench',
  request: () => Promise.reject(new Error('unused')),
  list: async () => ({ items: pods, resourceVersion: '1' }),
  watch: (_p, _q, _on, o) =>
    new Promise((r) => o?.signal?.addEventListener('abort', () => r(), { once: true })),
  close: async () => undefined,
};
if (LEASES) {
  mkdirSync(`${LEASES}/bench-net`, { recursive: true });
  for (let i = 0; i < PODS; i++)
    writeFileSync(`${LEASES}/bench-net/${ip(i)}`, `${i.toString(16).padStart(64, '0')}\r\neth0`);
}
const watchers = {};
for (const mode of ['off', 'quarantine', 'auto']) {
  watchers[mode] = startPodWatcher({
    client,
    nodeName: 'n',
    unknownPodWaitMs: 0,
    clock: Date.now,
    metrics: createMetrics(new Registry(), { defaults: false }),
    logger: createLogger('error', { write: () => undefined }),
    sandboxBinding: mode,
    ipamLeaseDir: LEASES,
  });
  await watchers[mode].synced;
}
const routes = LEASES ? firstSignal(createRouteTable(), createLeaseReader(LEASES)) : createRouteTable();
const want = LEASES ? 'lease' : 'route';
if (routes.signalFor(ip(0))?.kind !== want) throw new Error(`no ${want} signal in this namespace`);

async function measure(fn) {
  const cpu = process.cpuUsage();
  const t = performance.now();
  for (let i = 0; i < CALLS; i++) await fn(ip(i % PODS));
  const used = process.cpuUsage(cpu);
  return { cpuUs: (used.user + used.system) / CALLS, wallUs: ((performance.now() - t) * 1000) / CALLS };
}

const out = { off: [], quarantine: [], auto: [], autoKeepAlive: [], routeRead: [] };
const conns = new Map(pods.map((_, i) => [ip(i), {}]));
for (let r = 0; r < ROUNDS; r++) {
  for (const mode of ['off', 'quarantine', 'auto']) {
    const res = await measure((x) => watchers[mode].byIp(x));
    out[mode].push(res);
  }
  out.autoKeepAlive.push(await measure((x) => watchers.auto.byIp(x, conns.get(x))));
  out.routeRead.push(await measure((x) => routes.signalFor(x)));
}
for (const w of Object.values(watchers)) w.stop();
const found = await watchers.auto.byIp(ip(1));
if (found.kind !== 'found') throw new Error(`auto did not find the pod: ${found.kind}`);
console.log(JSON.stringify(out));
