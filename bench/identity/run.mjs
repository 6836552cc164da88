// Identity benchmark on the real kube-apiserver and moto (npm run testenv:up first):
//   seed 10,000 pods over 100 nodes (110 on the agent's node), start the identity child, report time to
//   ready and RSS; double the other nodes' pods and report RSS again (fresh start and running agent);
//   then first-credential latency for new pods right after they get an IP (p50/p99), and a baseline of
//   an uncached STS call in the same run. Bounded: fixed counts, one namespace, deleted at the end.
import { execFileSync, fork, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
/* global fetch */
import { performance } from 'node:perf_hooks';
import { setTimeout } from 'node:timers';
import { URL } from 'node:url';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { shippedNodeFlags } from '../frontdoor/proc.mjs';

const ROOT = new URL('../..', import.meta.url).pathname;
const cacheDir =
  process.env.IMDSGATE_TESTENV_CACHE ?? join(process.env.HOME ?? '/root', '.cache/imdsgate-testenv');
const state = JSON.parse(readFileSync(join(cacheDir, 'state.json'), 'utf8'));
const PODS = Number(process.env.BENCH_PODS ?? 10_000);
const NODES = 100;
const ON_AGENT = 110;
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 100);
// Memory: every variant is started RSS_RUNS times, round-robin (noise hits all alike); medians reported.
const RSS_RUNS = Number(process.env.BENCH_RSS_RUNS ?? 5);
const RSS_LATER_MS = Number(process.env.BENCH_RSS_LATER_MS ?? 0);
// Optional: sources compiled before the client-node replacement, for a before/after in the same run.
const BEFORE_DIST = process.env.BENCH_BEFORE_DIST;
// Node-flag variants measured besides Node's defaults; by default the flags the CLI ships with (its
// shebang, src/main.ts), i.e. the agent as the image runs it. BENCH_V8_FLAGS='a b;c' overrides.
const flagVariants = (dist) =>
  process.env.BENCH_V8_FLAGS === undefined
    ? [shippedNodeFlags(join(dist, 'main.js')).join(' ')]
    : process.env.BENCH_V8_FLAGS.split(';').filter((f) => f !== '');
const run = Math.random().toString(16).slice(2, 8);
const NS = `bench-${run}`;
const AGENT_NODE = `bench-${run}-node-0`;

let api;
const procs = [];

// The shared env is restarted by other test runs; a multi-minute seed needs its own etcd, apiserver and
// moto, built from the same cached binaries, PKI and venv, on loopback ports of its own.
const freePort = () =>
  new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, ms = 120_000, dead = () => undefined) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (dead() !== undefined) throw new Error(`${what}: the process exited (${dead()})`);
    if (
      await fn().then(
        () => true,
        () => false,
      )
    )
      return;
    await sleep(250);
  }
  throw new Error(`${what} did not come up`);
}

async function startPrivateEnv() {
  const dir = mkdtempSync(join(tmpdir(), 'imdsgate-bench-env-'));
  const [etcdPort, peerPort, kubePort, stsPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const pki = state.pkiDir;
  const run = (cmd, args) => procs.push(spawn(cmd, args, { stdio: 'ignore' }));
  run(join(state.binDir, 'etcd'), [
    '--name',
    'bench',
    '--data-dir',
    join(dir, 'etcd'),
    '--listen-client-urls',
    `http://127.0.0.1:${etcdPort}`,
    '--advertise-client-urls',
    `http://127.0.0.1:${etcdPort}`,
    '--listen-peer-urls',
    `http://127.0.0.1:${peerPort}`,
    '--initial-advertise-peer-urls',
    `http://127.0.0.1:${peerPort}`,
    '--initial-cluster',
    `bench=http://127.0.0.1:${peerPort}`,
    '--unsafe-no-fsync',
    '--log-level',
    'error',
  ]);
  run(join(state.binDir, 'kube-apiserver'), [
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${kubePort}`,
    `--etcd-servers=http://127.0.0.1:${etcdPort}`,
    `--tls-cert-file=${pki}/apiserver.crt`,
    `--tls-private-key-file=${pki}/apiserver.key`,
    `--client-ca-file=${pki}/ca.crt`,
    '--authorization-mode=Node,RBAC',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${pki}/sa.pub`,
    `--service-account-signing-key-file=${pki}/sa.key`,
    '--service-cluster-ip-range=169.254.240.0/24',
    '--profiling=false',
    '--v=0',
  ]);
  run(join(dirname(state.python), 'moto_server'), ['-H', '127.0.0.1', '-p', String(stsPort)]);
  const kubeconfig = join(dir, 'admin.kubeconfig');
  writeFileSync(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      `clusters: [{ name: b, cluster: { server: "https://127.0.0.1:${kubePort}", certificate-authority: "${pki}/ca.crt" } }]`,
      `users: [{ name: a, user: { client-certificate: "${pki}/admin.crt", client-key: "${pki}/admin.key" } }]`,
      'contexts: [{ name: b, context: { cluster: b, user: a } }]',
      'current-context: b',
      '',
    ].join('\n'),
  );
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  api = kc.makeApiClient(CoreV1Api);
  await waitFor('kube-apiserver', () => api.listNamespace({ limit: 1 }));
  await waitFor('moto', () =>
    fetch(`http://127.0.0.1:${stsPort}/moto-api/`).then((r) => {
      if (!r.ok) throw new Error();
    }),
  );
  return { kubeconfig, sts: `http://127.0.0.1:${stsPort}`, dir };
}

function stopPrivateEnv(env) {
  for (const p of procs) p.kill('SIGKILL');
  if (env) rmSync(env.dir, { recursive: true, force: true });
}

const pct = (xs, p) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const mb = (b) => (b / 1024 / 1024).toFixed(1);

async function pool(n, concurrency, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

function podBody(name, node, k) {
  return {
    metadata: {
      name,
      labels: { app: `a${k % 50}` },
      annotations: { 'iam.amazonaws.com/role': `app-${k % 20}` },
    },
    spec: {
      nodeName: node,
      automountServiceAccountToken: false,
      containers: [{ name: 'c', image: 'example.invalid/x' }],
    },
  };
}

async function setIp(name, ip) {
  const pod = await api.readNamespacedPod({ name, namespace: NS });
  pod.status = { ...pod.status, phase: 'Running', podIP: ip, podIPs: [{ ip }] };
  await api.replaceNamespacedPodStatus({ name, namespace: NS, body: pod });
}

const ipOf = (k) => `169.254.${100 + Math.floor(k / 250)}.${1 + (k % 250)}`;

async function seed(offset, count, includeAgent) {
  const t0 = performance.now();
  await pool(count, 24, async (i) => {
    const k = offset + i;
    const onAgent = includeAgent && i < ON_AGENT;
    const node = onAgent ? AGENT_NODE : `bench-${run}-node-${1 + (k % (NODES - 1))}`;
    await api.createNamespacedPod({ namespace: NS, body: podBody(`p${k}`, node, k) });
    if (onAgent) await setIp(`p${k}`, ipOf(k));
  });
  return (performance.now() - t0) / 1000;
}

/** "--flag NAME=value" → node flags and environment variables (e.g. MALLOC_ARENA_MAX=2). */
const splitFlags = (flags) => ({
  node: flags.filter((f) => !/^[A-Z_]+=/.test(f)),
  env: Object.fromEntries(flags.filter((f) => /^[A-Z_]+=/.test(f)).map((f) => f.split('='))),
});

function startAgent(dist, env, flags = []) {
  const args = [
    '--node-name',
    AGENT_NODE,
    '--kubeconfig',
    env.kubeconfig,
    '--base-role-arn',
    'arn:aws:iam::123456789012:role/',
  ];
  const child = fork(join(ROOT, 'bench/identity/agent.mjs'), [], {
    execArgv: ['--expose-gc', ...splitFlags(flags).node],
    env: {
      ...process.env,
      ...splitFlags(flags).env,
      IMDSGATE_BENCH_DIST: dist,
      IMDSGATE_BENCH_ARGS: JSON.stringify(args),
      IMDSGATE_BENCH_STS: env.sts,
    },
  });
  // A child that crashes must end the bench with its exit status, not leave it waiting for a message.
  const next = (type) =>
    new Promise((resolve, reject) => {
      const done = () => (child.off('message', on), child.off('exit', died));
      const on = (m) => m.type === type && (done(), resolve(m));
      const died = (code, signal) => (
        done(),
        reject(new Error(`bench agent exited (${code ?? signal}) before '${type}'`))
      );
      child.on('message', on);
      child.once('exit', died);
    });
  return { child, next, ask: (m) => (child.send(m), next(m.type)) };
}

const median = (xs) => pct(xs, 50);
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

/**
 * The whole agent as deployed: `imdsgate serve` (front door, metrics, STS issuer, Kubernetes identity)
 * against AEMM as upstream, rules off. RSS read from /proc (no forced GC) 2 s after /readyz says 200.
 */
async function startServe(dist, env, flags = []) {
  const [listen, metrics] = [await freePort(), await freePort()];
  const t0 = performance.now();
  const argv = [
    `--listen=127.0.0.1:${listen}`,
    `--metrics-listen=127.0.0.1:${metrics}`,
    `--upstream=${env.aemm}`,
    `--kubeconfig=${env.kubeconfig}`,
    `--node-name=${AGENT_NODE}`,
    `--sts-endpoint=${env.sts}`,
    '--region=us-east-1',
    '--base-role-arn=arn:aws:iam::123456789012:role/',
    '--log-level=error',
  ];
  const code = `const { run } = await import(${JSON.stringify(`${dist}/commands/serve.js`)}); process.exitCode = await run(${JSON.stringify(argv)});`;
  const { node, env: vars } = splitFlags(flags);
  const child = spawn(process.execPath, [...node, '--no-warnings', '--input-type=module', '-e', code], {
    env: { ...process.env, ...vars, IMDSGATE_MANAGE_RULES: 'false' },
    stdio: 'ignore',
  });
  let exited;
  child.once('exit', (code, signal) => (exited = code ?? signal));
  await waitFor(
    'imdsgate serve /readyz',
    () =>
      fetch(`http://127.0.0.1:${metrics}/readyz`).then((r) => {
        if (r.status !== 200) throw new Error(String(r.status));
      }),
    30_000,
    () => exited,
  );
  const readyMs = performance.now() - t0;
  const vmRss = () =>
    Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]) * 1024;
  await sleep(2000);
  const rss = vmRss();
  // BENCH_RSS_LATER_MS: RSS read again that long after ready, once the agent has been quiet for a while
  // (src/heap-trim.ts gives the start-up garbage back after its first quiet period).
  let rssLater;
  if (RSS_LATER_MS > 2000) {
    await sleep(RSS_LATER_MS - 2000);
    rssLater = vmRss();
  }
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  return { readyMs, rss, rssLater };
}

async function startAemm() {
  const port = await freePort();
  const home = mkdtempSync(join(tmpdir(), 'imdsgate-bench-aemm-'));
  writeFileSync(join(home, 'aemm-config.json'), '{}');
  const bin = join(state.binDir, 'ec2-metadata-mock');
  const args = ['-n', '127.0.0.1', '-p', String(port), '-c', join(home, 'aemm-config.json')];
  procs.push(spawn(bin, args, { stdio: 'ignore', env: { HOME: home, PATH: process.env.PATH } }));
  const url = `http://127.0.0.1:${port}`;
  await waitFor('AEMM', () =>
    fetch(`${url}/latest/meta-data/`).then((r) => {
      if (!r.ok) throw new Error();
    }),
  );
  return url;
}

/** Ready time and RSS of each variant, started RSS_RUNS times round-robin; medians and all samples. */
async function rssMatrix(dist, env) {
  const FLAG_VARIANTS = flagVariants(dist);
  const variants = [
    ...(BEFORE_DIST ? [{ name: 'identity child, client-node (before)', dist: BEFORE_DIST, flags: [] }] : []),
    { name: 'identity child, undici client', dist, flags: [] },
    ...FLAG_VARIANTS.map((f) => ({ name: `identity child, undici client, ${f}`, dist, flags: f.split(' ') })),
    ...(BEFORE_DIST
      ? [{ name: 'imdsgate serve, client-node (before)', dist: BEFORE_DIST, flags: [], serve: true }]
      : []),
    { name: 'imdsgate serve, undici client', dist, flags: [], serve: true },
    ...FLAG_VARIANTS.map((f) => ({
      name: `imdsgate serve, undici client, ${f}`,
      dist,
      flags: f.split(' '),
      serve: true,
    })),
  ];
  const samples = new Map(
    variants.map((v) => [v.name, { rss: [], later: [], ready: [], stages: undefined }]),
  );
  for (let r = 0; r < RSS_RUNS; r++) {
    for (const v of variants) {
      let res;
      if (v.serve) res = await startServe(v.dist, env, v.flags);
      else {
        const a = startAgent(v.dist, env, v.flags);
        res = await a.next('ready');
        a.child.send({ type: 'stop' });
        await new Promise((done) => a.child.once('exit', done));
      }
      samples.get(v.name).rss.push(res.rss / 1024 / 1024);
      if (res.rssLater !== undefined) samples.get(v.name).later.push(res.rssLater / 1024 / 1024);
      samples.get(v.name).stages ??= res.stages;
      samples.get(v.name).ready.push(res.readyMs);
    }
  }
  return Object.fromEntries(
    [...samples].map(([name, s]) => [
      name,
      {
        rssMedianMB: median(s.rss).toFixed(1),
        readyMedianMs: Math.round(median(s.ready)),
        rssMB: s.rss.map((x) => Number(x.toFixed(1))),
        ...(s.later.length > 0
          ? {
              rssLaterMedianMB: median(s.later).toFixed(1),
              rssLaterMB: s.later.map((x) => Number(x.toFixed(1))),
            }
          : {}),
        ...(s.stages ? { firstRunStagesMB: s.stages } : {}),
      },
    ]),
  );
}

async function main() {
  // Inside node_modules so the compiled files resolve the project's dependencies; never committed.
  // One level below a copy of package.json, as dist/ sits below the real one: src/metrics.ts reads the
  // version from '../package.json' (and the copy's "type" makes the compiled files ES modules).
  const dist = join(ROOT, 'node_modules/.cache/imdsgate-bench-identity/dist');
  mkdirSync(dist, { recursive: true });
  copyFileSync(join(ROOT, 'package.json'), join(dirname(dist), 'package.json'));
  try {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json', '--outDir', dist], {
      cwd: ROOT,
      stdio: 'inherit',
    });
  } catch {
    // tsc still emits when only other modules' types are broken; the import below proves what we need.
  }
  const env = await startPrivateEnv();
  await api.createNamespace({ body: { metadata: { name: NS } } });
  await api.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'default' } } });
  const out = { machine: '2 shared vCPU (noisy)', pods: PODS, nodes: NODES, onAgentNode: ON_AGENT };
  out.loadAverageAtStart = load();
  try {
    out.seedSeconds = await seed(0, PODS, true);
    env.aemm = await startAemm();
    out.loadAverageBeforeMemory = load();
    out.memory = await rssMatrix(dist, env);
    out.loadAverageAfterMemory = load();
    if (process.env.BENCH_MEMORY_ONLY === '1') return;

    // The identity child and the fresh one after the doubling run with the flags the image uses.
    const shipped = shippedNodeFlags(join(dist, 'main.js'));
    out.flags = shipped.join(' ');
    const a = startAgent(dist, env, shipped);
    const ready = await a.next('ready');
    out.readyMs = Math.round(ready.readyMs);
    out.rssMB = mb(ready.rss);
    out.podsKnown = ready.pods.values[0]?.value;

    out.doubleSeedSeconds = await seed(PODS, PODS - ON_AGENT, false);
    out.rssRunningAfterDoubleMB = mb((await a.ask({ type: 'rss' })).rss);
    a.child.send({ type: 'stop' });
    // Flatness of the whole agent: `imdsgate serve` as shipped, started RSS_RUNS times again on the
    // doubled cluster, against the same variant's median before the doubling (out.memory).
    const again = [];
    for (let r = 0; r < RSS_RUNS; r++) again.push((await startServe(dist, env, shipped)).rss / 1024 / 1024);
    out.serveAsShippedAfterDouble = {
      rssMedianMB: median(again).toFixed(1),
      rssMB: again.map((x) => Number(x.toFixed(1))),
    };
    const b = startAgent(dist, env, shipped);
    const readyB = await b.next('ready');
    out.readyAfterDoubleMs = Math.round(readyB.readyMs);
    out.rssFreshAfterDoubleMB = mb(readyB.rss);

    // First credentials for new pods on the agent's node: create, set IP, ask immediately.
    // Immediately: the request races the watch event and joins the prefetch's STS call. After 100 ms (a
    // container starts well after its sandbox got the IP): the prefetch has landed.
    const immediate = [];
    const delayed = [];
    const lookupImmediate = [];
    const errors = [];
    for (let s = 0; s < 2 * SAMPLES; s++) {
      const k = 2 * PODS + s;
      await api.createNamespacedPod({ namespace: NS, body: podBody(`n${k}`, AGENT_NODE, k) });
      await setIp(`n${k}`, ipOf(k));
      if (s % 2 === 1) await new Promise((r) => setTimeout(r, 100));
      const r = await b.ask({ type: 'creds', ip: ipOf(k) });
      if (r.error) errors.push(r.error);
      else (s % 2 === 1 ? delayed : immediate).push(r.ms);
      if (!r.error && s % 2 === 0) lookupImmediate.push(r.lookupMs);
    }
    // Baseline in the same run: the same path without the cache, i.e. an STS round trip per request.
    const baseline = [];
    for (let s = 0; s < 30; s++) baseline.push((await b.ask({ type: 'sts', ip: ipOf(2 * PODS) })).ms);
    const summary = (xs) => ({
      samples: xs.length,
      p50ms: pct(xs, 50)?.toFixed(2),
      p99ms: pct(xs, 99)?.toFixed(2),
      maxms: Math.max(...xs).toFixed(2),
    });
    out.firstCredsImmediate = summary(immediate);
    // The part of an immediate request spent waiting for the watch event (IP set → pod known).
    out.watchDelayImmediate = summary(lookupImmediate);
    out.firstCredsAfter100ms = summary(delayed);
    out.errors = errors.slice(0, 5);
    out.uncachedBaseline = { p50ms: pct(baseline, 50).toFixed(2), p99ms: pct(baseline, 99).toFixed(2) };
    out.ratioP50UncachedVsAfter100ms = (pct(baseline, 50) / pct(delayed, 50)).toFixed(1);
    b.child.send({ type: 'stop' });
    out.loadAverageAtEnd = load();
  } finally {
    stopPrivateEnv(env);
    console.log(JSON.stringify(out, null, 2));
  }
}

await main();
