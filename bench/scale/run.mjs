#!/usr/bin/env node
// Scale benchmark (issue 14 §3): the agent's memory and start-up as the cluster grows in each dimension,
// and what N agents cost one API server, for this tree ("new") and an earlier commit ("previous",
// BENCH_BASE_REF, default the merge-base with main) in the same run. A private etcd + kube-apiserver
// from the test environment's pinned binaries (cluster.mjs), removed at the end. Sizes (env):
//   BENCH_NS=1000 BENCH_SA=10000 BENCH_PODS=20000 BENCH_NODES=200 BENCH_AGENTS=100 BENCH_OWN_PODS=30
// Writes bench/scale/RESULTS.md (BENCH_OUT) and prints the raw JSON.
/* global URL, setTimeout */
import { execFileSync, fork, spawn } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, homedir, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, freePort, rssMb, shippedNodeFlags, waitFor } from '../frontdoor/proc.mjs';
import { startCluster } from './cluster.mjs';
import * as pop from './populate.mjs';
import { report } from './report.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const env = (k, d) => Number(process.env[k] ?? d);
const SIZE = {
  ns: env('BENCH_NS', 1000),
  sa: env('BENCH_SA', 10_000),
  pods: env('BENCH_PODS', 20_000),
  nodes: env('BENCH_NODES', 200),
  agents: env('BENCH_AGENTS', 100),
  ownPods: env('BENCH_OWN_PODS', 30),
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = [];
let cleanupCluster;
const log = (s) => process.stderr.write(`[scale ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

async function main() {
  const work = join(tmpdir(), `imdsgate-bench-scale-${process.pid}`);
  const base =
    process.env.BENCH_BASE_REF ??
    execFileSync('git', ['merge-base', 'HEAD', 'main'], { cwd: ROOT }).toString().trim();
  const designs = { previous: join(work, 'previous'), new: join(work, 'new') };
  build(designs.previous, base);
  build(designs.new);
  const cluster = await startCluster(join(work, 'cluster'));
  cleanupCluster = () => cluster.stop().then(() => rmSync(work, { recursive: true, force: true }));
  try {
    const k = await pop.adminClient(join(designs.new, 'dist'), cluster.adminKc);
    await pop.grantAgent(k, 'imdsgate-bench-agent');
    await pop.namespaces(k, 0, 1);
    await pop.defaultServiceAccount(k);
    await pop.podsOnNode(k, 'bench-node-0', SIZE.ownPods, '169.254');
    const aux = await auxiliaries(work);
    const growth = [];
    const only = process.env.BENCH_ONLY;
    const measureAll = async (step) => {
      if (only === 'fleet') return;
      for (const [design, dir] of Object.entries(designs)) {
        growth.push({ step, design, ...(await measureAgent(dir, cluster.agentKc, aux)) });
        log(`${step} ${design}: ${JSON.stringify(growth.at(-1))}`);
      }
    };
    await measureAll('empty');
    let t = Date.now();
    await pop.podsElsewhere(k, 0, SIZE.pods, SIZE.nodes);
    log(`${SIZE.pods} pods elsewhere in ${Date.now() - t} ms`);
    await measureAll(`+${SIZE.pods} pods on ${SIZE.nodes} other nodes`);
    t = Date.now();
    await pop.namespaces(k, 1, SIZE.ns);
    log(`${SIZE.ns} namespaces in ${Date.now() - t} ms`);
    await measureAll(`+${SIZE.ns} namespaces`);
    // The fleet runs before the service accounts are added: 100 simulated agents in one Node process
    // parsing 10k full service accounts each (the previous design) made the simulator itself, not the
    // API server, the bottleneck on 2 shared cores.
    const fleet = {};
    for (const [design, dir] of only === 'growth' ? [] : Object.entries(designs)) {
      fleet[design] = await measureFleet(join(dir, 'dist'), cluster);
      log(`fleet ${design}: ${JSON.stringify({ ...fleet[design], perSecond: undefined })}`);
    }
    t = Date.now();
    await pop.serviceAccounts(k, 0, SIZE.sa, SIZE.ns);
    log(`${SIZE.sa} service accounts in ${Date.now() - t} ms`);
    await measureAll(`+${SIZE.sa} service accounts`);
    await k.close();
    const out = {
      size: SIZE,
      base,
      machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`,
      loadavg: loadavg().map((x) => +x.toFixed(2)),
      growth,
      fleet,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
    writeFileSync(process.env.BENCH_OUT ?? join(ROOT, 'bench/scale/RESULTS.md'), report(out));
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await cluster.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

/** AEMM and moto, which the agent's readiness needs (its upstream IMDS session; STS for credentials). */
async function auxiliaries(work) {
  const cache = process.env.IMDSGATE_TESTENV_CACHE ?? join(homedir(), '.cache/imdsgate-testenv');
  const aemmBin = join(cache, 'bin/ec2-metadata-mock');
  const motoBin = [
    join(cache, 'venv/bin/moto_server'),
    ...(process.env.PATH ?? '').split(':').map((d) => join(d, 'moto_server')),
  ].find(existsSync);
  const [aemmPort, motoPort] = [await freePort(), await freePort()];
  const start = (cmd, args, e) => children.push(spawn(cmd, args, { env: e, stdio: 'ignore' }));
  start(motoBin, ['-H', '127.0.0.1', '-p', String(motoPort)], { PATH: process.env.PATH });
  start(aemmBin, ['-n', '127.0.0.1', '-p', String(aemmPort)], {
    HOME: work,
    GOMAXPROCS: '1',
    PATH: process.env.PATH,
  });
  await waitFor(`http://127.0.0.1:${aemmPort}/latest/meta-data/instance-id`);
  await waitFor(`http://127.0.0.1:${motoPort}/moto-api/`);
  return { aemm: `http://127.0.0.1:${aemmPort}`, sts: `http://127.0.0.1:${motoPort}` };
}

/**
 * The built agent (its shipped node flags) on bench-node-0: time to Ready, RSS at Ready and 10 s later.
 * An agent that exits before Ready (a port freePort() handed out was taken meanwhile by another session
 * on this shared machine) is started again on new ports, up to three times, its stderr kept for the error.
 */
async function measureAgent(dir, kubeconfig, aux) {
  let last = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const r = await startAgentOnce(dir, kubeconfig, aux);
    if (r.exited === undefined) return r;
    last = r.exited;
    log(`agent exited before Ready (attempt ${attempt + 1}): ${last.slice(-300)}`);
  }
  throw new Error(`agent never became ready: ${last.slice(-500)}`);
}

async function startAgentOnce(dir, kubeconfig, aux) {
  const main = join(dir, 'dist/main.js');
  const [port, mport] = [await freePort(), await freePort()];
  const t0 = Date.now();
  const agent = spawn(
    process.execPath,
    [
      ...shippedNodeFlags(main),
      main,
      'serve',
      `--listen=127.0.0.1:${port}`,
      `--metrics-listen=127.0.0.1:${mport}`,
      `--upstream=${aux.aemm}`,
      `--kubeconfig=${kubeconfig}`,
      '--node-name=bench-node-0',
      `--sts-endpoint=${aux.sts}`,
      '--region=us-east-1',
      '--log-level=warn',
    ],
    { env: { ...process.env, IMDSGATE_MANAGE_RULES: 'false' }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  children.push(agent);
  let stderr = '';
  agent.stderr.on('data', (b) => (stderr = (stderr + b).slice(-4000)));
  const exited = new Promise((r) => agent.once('exit', () => r('exit')));
  try {
    const first = await Promise.race([waitFor(`http://127.0.0.1:${mport}/readyz`, 120_000), exited]);
    if (first === 'exit') return { exited: stderr || `exit code ${agent.exitCode}` };
    const readyMs = Date.now() - t0;
    const rssReady = rssMb(agent.pid);
    await sleep(10_000);
    return { readyMs, rssReadyMb: +rssReady.toFixed(1), rssSettledMb: +rssMb(agent.pid).toFixed(1) };
  } finally {
    if (agent.exitCode === null) agent.kill('SIGTERM');
    await exited;
  }
}

/** N simulated agents against a freshly restarted API server: cost of the first sync, then a restart. */
async function measureFleet(dist, cluster) {
  const N = SIZE.agents;
  await cluster.restart();
  await cluster.ready();
  await sleep(5000);
  const before = cluster.stat();
  const sim = fork(join(ROOT, 'bench/scale/sim.mjs'), [dist, cluster.agentKc, String(N)], {
    stdio: 'ignore',
  });
  children.push(sim);
  const messages = [];
  sim.on('message', (m) => messages.push(m));
  const next = async (pred, ms) => {
    const end = Date.now() + ms;
    for (;;) {
      const m = messages.find(pred);
      if (m !== undefined) return m;
      if (Date.now() > end || sim.exitCode !== null) return undefined;
      await sleep(50);
    }
  };
  const first = await next((m) => m.synced !== undefined, 300_000);
  const afterSync = cluster.stat();
  await sleep(10_000);
  const settled = cluster.stat();
  // Restart: from the moment the API server is told to stop until every agent relisted all 3 views.
  sim.send({ cmd: 'mark' });
  await sleep(300);
  messages.length = 0;
  const t0 = Date.now();
  const { stopMs, startedAt } = await cluster.restart('SIGKILL');
  const back = await next((m) => m.relisted >= 3 * N, 180_000);
  const resyncMs = back === undefined ? undefined : Date.now() - startedAt;
  const resyncFromKillMs = back === undefined ? undefined : Date.now() - t0;
  const cpuResync = cluster.stat().cpuSeconds; // the new process: its own start-up plus the resync
  sim.send({ cmd: 'report' });
  const rep = (await next((m) => m.report !== undefined, 10_000))?.report ?? {};
  sim.send({ cmd: 'stop' });
  await new Promise((r) => (sim.exitCode !== null ? r() : sim.once('exit', r)));
  return {
    agents: N,
    firstSyncMs: first?.synced,
    firstSyncRequests: first?.requests,
    firstSync429: first?.tooMany,
    apiCpuFirstSyncS: +(afterSync.cpuSeconds - before.cpuSeconds).toFixed(2),
    apiRssBaseMb: +before.rssMb.toFixed(1),
    apiRssWithAgentsMb: +settled.rssMb.toFixed(1),
    apiRssPerAgentKb: Math.round(((settled.rssMb - before.rssMb) * 1024) / N),
    apiStopMs: stopMs,
    resyncMs,
    resyncFromKillMs,
    apiCpuResyncS: +cpuResync.toFixed(2),
    peakRequestsPerSecond: Math.max(0, ...(rep.perSecond ?? [])),
    resyncRequests: (rep.perSecond ?? []).reduce((s, x) => s + x, 0),
    resync429: rep.tooMany,
    resyncErrors: rep.errors,
    perSecond: rep.perSecond,
  };
}

for (const sig of ['SIGINT', 'SIGTERM'])
  process.once(sig, () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    void cleanupCluster?.().finally(() => process.exit(130));
  });

main().catch((err) => {
  console.error(err);
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  process.exitCode = 1;
});
