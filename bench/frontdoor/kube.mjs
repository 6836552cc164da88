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
/* global fetch, setTimeout */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { cpus, homedir, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import autocannon from 'autocannon';
import { build, cpuSeconds, freePort, rssMb, shippedNodeFlags, waitFor } from './proc.mjs';

const [mode = 'rounds', a1, a2] = process.argv.slice(2);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const ROLE_ARN = 'arn:aws:iam::123456789012:role/bench-role';
const CREDS = '/latest/meta-data/iam/security-credentials/bench-role';
const children = [];
const cleanups = [];

const start = (cmd, args, env) => {
  const c = spawn(cmd, args, {
    env,
    stdio: ['ignore', 'ignore', process.env.BENCH_VERBOSE ? 'inherit' : 'ignore'],
  });
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
  const k = createKubeClient(fromKubeconfigFile(kubeconfig));
  const id = randomBytes(3).toString('hex');
  const [node, ns] = [`bench-fd-node-${id}`, `bench-fd-${id}`];
  cleanups.push(() => k.close());
  const post = (path, body) => k.request('POST', path, { body });
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
  const state = JSON.parse(readFileSync(join(cache, 'state.json'), 'utf8'));
  const aemmBin = join(cache, 'bin/ec2-metadata-mock');
  const motoBin = join(cache, 'venv/bin/moto_server');
  for (const f of [aemmBin, motoBin]) if (!existsSync(f)) throw new Error(`${f} missing: npm run testenv:up`);
  const work = join(tmpdir(), `imdsgate-bench-kube-${process.pid}`);
  cleanups.push(() => rmSync(work, { recursive: true, force: true }));
  build(work);
  const flags =
    process.env.BENCH_NODE_FLAGS === undefined
      ? shippedNodeFlags(join(work, 'dist/main.js'))
      : process.env.BENCH_NODE_FLAGS.split(' ').filter(Boolean);
  const { node } = await cluster(work, state.kube.adminKubeconfig);
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
      `--kubeconfig=${state.kube.adminKubeconfig}`,
      `--node-name=${node}`,
      `--sts-endpoint=http://127.0.0.1:${motoPort}`,
      '--region=us-east-1',
      `--log-level=${process.env.BENCH_LOG_LEVEL ?? 'info'}`,
    ],
    { ...process.env, IMDSGATE_MANAGE_RULES: 'false' },
  );
  const metricsUrl = `http://127.0.0.1:${mport}`;
  await waitFor(`${metricsUrl}/readyz`, 60_000);
  const url = `http://127.0.0.1:${port}${CREDS}`;
  const warm = await fetch(url);
  if (warm.status !== 200) throw new Error(`credential warm-up answered ${warm.status}`);
  const rssIdle = rssMb(agent.pid);
  const samples = mode === 'soak' ? await soak(agent, url, metricsUrl, Number(a1 ?? 4)) : [];
  if (mode !== 'soak') {
    for (let i = 0; i < Number(a1 ?? 3); i++) {
      samples.push(await sampled(agent, metricsUrl, () => load(url, Number(a2 ?? 10))));
      process.stderr.write(`round ${i + 1}: ${JSON.stringify(samples.at(-1))}\n`);
    }
  }
  const out = {
    mode,
    connections: CONNECTIONS,
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`,
    loadavg: loadavg().map((x) => +x.toFixed(2)),
    flags: flags.join(' '),
    rssIdleMb: +rssIdle.toFixed(1),
    samples,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

const load = (url, seconds) => autocannon({ url, connections: CONNECTIONS, duration: seconds });

/** Runs `fn` (which returns an autocannon result or a request count) and measures the agent around it. */
async function sampled(agent, metricsUrl, fn) {
  const [cpu0, s0, t0] = [cpuSeconds(agent.pid), await agentStats(metricsUrl), Date.now()];
  const r = await fn();
  const [cpu1, s1, secs] = [cpuSeconds(agent.pid), await agentStats(metricsUrl), (Date.now() - t0) / 1000];
  const total = typeof r === 'number' ? r : r.requests.total;
  return {
    rps: Math.round(total / secs),
    cpuUs: Math.round(((cpu1 - cpu0) * 1e6) / Math.max(1, total)),
    cpuShare: +((cpu1 - cpu0) / secs).toFixed(2),
    gcShare: +((s1.gcSeconds - s0.gcSeconds) / secs).toFixed(3),
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
