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
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, homedir, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { startCluster } from '../scale/cluster.mjs';
import { cluster } from './kube-cluster.mjs';
import { report } from './kube-report.mjs';
import {
  agentStats,
  build,
  cpuSeconds,
  freePort,
  rssMb,
  sched,
  shippedNodeFlags,
  waitFor,
  wchanSampler,
} from './proc.mjs';

const [mode = 'rounds', a1, a2] = process.argv.slice(2);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
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
  const { node } = await cluster(work, kubeconfig, cleanups);
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
    ref: process.env.BENCH_REF,
    cluster: process.env.BENCH_CLUSTER === 'private' ? 'a private' : "the shared test environment's",
    stdout: process.env.BENCH_STDOUT === 'pipe' ? 'a pipe the driver drains' : '/dev/null',
    connections: CONNECTIONS,
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`,
    loadavg: loadavg().map((x) => +x.toFixed(2)),
    flags: flags.join(' '),
    rssIdleMb: +rssIdle.toFixed(1),
    logMb: +(logBytes / 2 ** 20).toFixed(1),
    samples,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, report(out));
}

const load = (url, seconds) => autocannon({ url, connections: CONNECTIONS, duration: seconds });

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
