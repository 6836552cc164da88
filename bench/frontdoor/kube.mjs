#!/usr/bin/env node
// Front door in Kubernetes mode (issue 14 §4): the built agent with the node-scoped pod watch and the
// namespace/service-account views against the test environment's real kube-apiserver, serving the cached
// credential path to one pod (status.podIP 127.0.0.1, role from its service account's IRSA annotation).
//   node bench/frontdoor/kube.mjs rounds [rounds=3] [seconds=10]   consecutive autocannon rounds
//   node bench/frontdoor/kube.mjs soak [minutes=4]                  one continuous load, sampled per minute
// Each sample: req/s, the agent's CPU µs per request (/proc), RSS, V8 heap used and GC time (the agent's
// own /metrics). BENCH_CONNECTIONS (50, as the comparison), BENCH_LOG_LEVEL (info), BENCH_NODE_FLAGS
// as in run.mjs. Needs `npm run testenv:up`. Everything it creates in the API server carries a unique name
// and is deleted on exit (namespace finalised by hand: the test environment runs no namespace controller).
/* global fetch, setTimeout, setInterval, clearInterval */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { cpus, homedir, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import autocannon from 'autocannon';
import { startCluster } from '../scale/cluster.mjs';
import { build, cpuSeconds, freePort, rssMb, shippedNodeFlags, waitFor } from './proc.mjs';

const [mode = 'rounds', a1, a2] = process.argv.slice(2);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const ROLE_ARN = 'arn:aws:iam::123456789012:role/bench-role';
const CREDS = '/latest/meta-data/iam/security-credentials/bench-role';
const children = [];
const cleanups = [];

// BENCH_STDOUT=pipe: the agent's log lines go to a pipe this process drains (as a container runtime's
// log pipe does), instead of /dev/null; the bytes read are counted.
let logBytes = 0;
const start = (cmd, args, env, out = 'ignore') => {
  const c = spawn(cmd, args, {
    env,
    stdio: ['ignore', out, process.env.BENCH_VERBOSE ? 'inherit' : 'ignore'],
  });
  c.stdout?.on('data', (b) => (logBytes += b.length));
  children.push(c);
  return c;
};

/** The agent's own gauges/counters: V8 heap used (MB) and GC seconds so far. */
async function agentStats(metricsUrl) {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const sum = (re) => [...text.matchAll(re)].reduce((s, m) => s + Number(m[1]), 0);
  return {
    heapMb: sum(/^nodejs_heap_size_used_bytes (\S+)$/gm) / 2 ** 20,
    gcSeconds: sum(/^nodejs_gc_duration_seconds_sum\{[^}]*\} (\S+)$/gm),
  };
}

/** Sets up the API objects the agent will see: node, namespace, annotated SA, a running pod on 127.0.0.1. */
async function cluster(work, kubeconfig) {
  const { fromKubeconfigFile } = await import(join(work, 'dist/kube/kubeconfig.js'));
  const { createKubeClient } = await import(join(work, 'dist/kube/rest.js'));
  const k = createKubeClient(fromKubeconfigFile(kubeconfig), { rateLimit: { qps: 0, burst: 0 } });
  const id = randomBytes(3).toString('hex');
  const [node, ns] = [`bench-fd-node-${id}`, `bench-fd-${id}`];
  cleanups.push(() => k.close());
  const post = (path, body) => k.request('POST', path, { body });
  // BENCH_CHURN=n: n namespaces a second created (with an annotated service account) and deleted
  // while the load runs, as the shared test environment's other users do (and, with no namespace
  // controller there, each deleted namespace stays Terminating). Only with BENCH_CLUSTER=private.
  const churn = Number(process.env.BENCH_CHURN ?? 0);
  if (churn > 0 && process.env.BENCH_CLUSTER === 'private') {
    let i = 0;
    const timer = setInterval(() => {
      const n = `churn-${id}-${i++}`;
      void post('/api/v1/namespaces', {
        metadata: { name: n, annotations: { 'iam.amazonaws.com/permitted': '.*' } },
      })
        .then(() =>
          post(`/api/v1/namespaces/${n}/serviceaccounts`, {
            metadata: { name: 'app', annotations: { 'eks.amazonaws.com/role-arn': ROLE_ARN } },
          }),
        )
        .then(() => k.request('DELETE', `/api/v1/namespaces/${n}`))
        .catch(() => undefined);
    }, 1000 / churn);
    cleanups.push(() => clearInterval(timer));
  }
  await post('/api/v1/nodes', { metadata: { name: node } });
  cleanups.push(() => k.request('DELETE', `/api/v1/nodes/${node}`));
  await post('/api/v1/namespaces', { metadata: { name: ns } });
  cleanups.push(async () => {
    await k.request('DELETE', `/api/v1/namespaces/${ns}/pods/bench-0`, { query: { gracePeriodSeconds: 0 } });
    await k.request('DELETE', `/api/v1/namespaces/${ns}/serviceaccounts/bench`);
    await k.request('DELETE', `/api/v1/namespaces/${ns}`);
    await k.request('PUT', `/api/v1/namespaces/${ns}/finalize`, {
      body: { metadata: { name: ns }, spec: { finalizers: [] } },
    });
  });
  const sa = { metadata: { name: 'bench', annotations: { 'eks.amazonaws.com/role-arn': ROLE_ARN } } };
  await post(`/api/v1/namespaces/${ns}/serviceaccounts`, sa);
  const pod = await post(`/api/v1/namespaces/${ns}/pods`, {
    metadata: { name: 'bench-0' },
    spec: {
      nodeName: node,
      serviceAccountName: 'bench',
      containers: [{ name: 'c', image: 'example.invalid/c:1' }],
    },
  });
  pod.status = { phase: 'Running', podIP: '127.0.0.1', podIPs: [{ ip: '127.0.0.1' }] };
  await k.request('PUT', `/api/v1/namespaces/${ns}/pods/bench-0/status`, { body: pod });
  return { node, ns };
}

async function main() {
  const cache = process.env.IMDSGATE_TESTENV_CACHE ?? join(homedir(), '.cache/imdsgate-testenv');
  const aemmBin = join(cache, 'bin/ec2-metadata-mock');
  const motoBin = [
    join(cache, 'venv/bin/moto_server'),
    ...(process.env.PATH ?? '').split(':').map((d) => join(d, 'moto_server')),
  ].find(existsSync);
  if (!existsSync(aemmBin) || motoBin === undefined)
    throw new Error('AEMM or moto missing: npm run testenv:up');
  const work = join(tmpdir(), `imdsgate-bench-kube-${process.pid}`);
  cleanups.push(() => rmSync(work, { recursive: true, force: true }));
  // BENCH_REF=<git ref>: the agent as built from that commit (e.g. the design before a fix).
  build(work, process.env.BENCH_REF);
  // BENCH_CLUSTER=private: a control plane of our own (bench/scale/cluster.mjs), away from the shared
  // API server's churn; default: the shared test environment's kube-apiserver.
  let kubeconfig;
  if (process.env.BENCH_CLUSTER === 'private') {
    const c = await startCluster(join(work, 'cluster'));
    cleanups.push(() => c.stop());
    kubeconfig = c.adminKc;
  } else {
    kubeconfig = JSON.parse(readFileSync(join(cache, 'state.json'), 'utf8')).kube.adminKubeconfig;
  }
  const flags =
    process.env.BENCH_NODE_FLAGS === undefined
      ? shippedNodeFlags(join(work, 'dist/main.js'))
      : process.env.BENCH_NODE_FLAGS.split(' ').filter(Boolean);
  const { node } = await cluster(work, kubeconfig);
  const [aemmPort, motoPort, port, mport] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  start('taskset', ['-c', '0', motoBin, '-H', '127.0.0.1', '-p', String(motoPort)], {
    PATH: process.env.PATH,
  });
  start('taskset', ['-c', '0', aemmBin, '-n', '127.0.0.1', '-p', String(aemmPort)], {
    HOME: work,
    GOMAXPROCS: '1',
    PATH: process.env.PATH,
  });
  await waitFor(`http://127.0.0.1:${aemmPort}/latest/meta-data/instance-id`);
  await waitFor(`http://127.0.0.1:${motoPort}/moto-api/`);
  const agent = start(
    'taskset',
    [
      '-c',
      '1',
      process.execPath,
      ...flags,
      join(work, 'dist/main.js'),
      'serve',
      `--listen=127.0.0.1:${port}`,
      `--metrics-listen=127.0.0.1:${mport}`,
      `--upstream=http://127.0.0.1:${aemmPort}`,
      `--kubeconfig=${kubeconfig}`,
      `--node-name=${node}`,
      `--sts-endpoint=http://127.0.0.1:${motoPort}`,
      '--region=us-east-1',
      `--log-level=${process.env.BENCH_LOG_LEVEL ?? 'info'}`,
    ],
    { ...process.env, IMDSGATE_MANAGE_RULES: 'false' },
    process.env.BENCH_STDOUT === 'pipe' ? 'pipe' : 'ignore',
  );
  const metricsUrl = `http://127.0.0.1:${mport}`;
  await waitFor(`${metricsUrl}/readyz`, 60_000);
  const url = `http://127.0.0.1:${port}${CREDS}`;
  const warm = await fetch(url);
  if (warm.status !== 200) throw new Error(`credential warm-up answered ${warm.status}`);
  const rssIdle = rssMb(agent.pid);
  // BENCH_SNAPSHOT=dir: V8 heap snapshots of the agent before and after the load (to diff what grew);
  // needs --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=dir in BENCH_NODE_FLAGS.
  const snapshot = async () => {
    if (!process.env.BENCH_SNAPSHOT) return;
    agent.kill('SIGUSR2');
    await new Promise((r) => setTimeout(r, 8000));
  };
  await snapshot();
  const samples = mode === 'soak' ? await soak(agent, url, metricsUrl, Number(a1 ?? 4)) : [];
  if (mode !== 'soak') {
    for (let i = 0; i < Number(a1 ?? 3); i++) {
      samples.push(await sampled(agent, metricsUrl, () => load(url, Number(a2 ?? 10))));
      process.stderr.write(`round ${i + 1}: ${JSON.stringify(samples.at(-1))}\n`);
    }
  }
  await snapshot();
  const out = {
    mode,
    connections: CONNECTIONS,
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`,
    loadavg: loadavg().map((x) => +x.toFixed(2)),
    flags: flags.join(' '),
    rssIdleMb: +rssIdle.toFixed(1),
    logMb: +(logBytes / 2 ** 20).toFixed(1),
    samples,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

const load = (url, seconds) => autocannon({ url, connections: CONNECTIONS, duration: seconds });

/** ns the agent's main thread has run and waited on a run queue (runnable, no core free): schedstat. */
const sched = (pid) => readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ').map(Number);

/** Samples what the main thread is blocked in (wchan) every 20 ms: epoll = idle, futex = a sleep/lock. */
function wchanSampler(pid) {
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

/** Runs `fn` (which returns an autocannon result or a request count) and measures the agent around it. */
async function sampled(agent, metricsUrl, fn) {
  const [cpu0, s0, t0, q0] = [
    cpuSeconds(agent.pid),
    await agentStats(metricsUrl),
    Date.now(),
    sched(agent.pid),
  ];
  const wchan = wchanSampler(agent.pid);
  const r = await fn();
  const blocked = wchan();
  const q1 = sched(agent.pid);
  const [cpu1, s1, secs] = [cpuSeconds(agent.pid), await agentStats(metricsUrl), (Date.now() - t0) / 1000];
  const total = typeof r === 'number' ? r : r.requests.total;
  return {
    rps: Math.round(total / secs),
    cpuUs: Math.round(((cpu1 - cpu0) * 1e6) / Math.max(1, total)),
    cpuShare: +((cpu1 - cpu0) / secs).toFixed(2),
    gcShare: +((s1.gcSeconds - s0.gcSeconds) / secs).toFixed(3),
    // Share of the wall time the main thread was runnable but not running (other work on its core).
    runqShare: +((q1[1] - q0[1]) / 1e9 / secs).toFixed(2),
    wchan: blocked,
    heapMb: +s1.heapMb.toFixed(1),
    rssMb: +rssMb(agent.pid).toFixed(1),
    ...(typeof r === 'number' ? {} : { p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors + r.timeouts }),
  };
}

/** One autocannon run for `minutes`, sampled once a minute from its per-response counter. */
async function soak(agent, url, metricsUrl, minutes) {
  let done = 0;
  const inst = autocannon({ url, connections: CONNECTIONS, duration: minutes * 60 });
  inst.on('response', () => (done += 1));
  const finished = new Promise((r) => inst.on('done', r));
  const samples = [];
  for (let m = 0; m < minutes; m++) {
    const before = done;
    samples.push(
      await sampled(agent, metricsUrl, async () => {
        await new Promise((r) => setTimeout(r, 60_000));
        return done - before;
      }),
    );
    process.stderr.write(`minute ${m + 1}: ${JSON.stringify(samples.at(-1))}\n`);
  }
  await finished;
  return samples;
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    for (const f of cleanups.reverse())
      await Promise.resolve()
        .then(f)
        .catch((e) => console.error(`cleanup: ${e.message}`));
  });
