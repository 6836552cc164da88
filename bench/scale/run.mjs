#!/usr/bin/env node
// Scale benchmark (issue 14 §3): the agent's memory and start-up as the cluster grows in each dimension,
// and what N agents cost one API server, for this tree ("new") and the design before issue 14
// ("previous", BENCH_BASE_REF, default de159b9717e4) in the same run. A private etcd + kube-apiserver
// from the test environment's pinned binaries (cluster.mjs), removed at the end. Sizes (env):
//   BENCH_NS=5000 BENCH_SA=50000 BENCH_PODS=100000 BENCH_NODES=1000 BENCH_OWN_PODS=30
//   BENCH_AGENTS=100,500,1000 (the fleet sweep) BENCH_FLEET_NS=1000 (namespaces when the fleet runs)
// Each dimension grows in steps (pods 1/5 then all, namespaces BENCH_FLEET_NS then all, service accounts
// 1/5, 1/2, all) and the built agent of both designs is measured after each step.
// Writes bench/scale/RESULTS.md (BENCH_OUT) and prints the raw JSON.
/* global URL, setTimeout */
import { fork, spawn } from 'node:child_process';
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
  ns: env('BENCH_NS', 5000),
  sa: env('BENCH_SA', 50_000),
  pods: env('BENCH_PODS', 100_000),
  nodes: env('BENCH_NODES', 1000),
  agents: (process.env.BENCH_AGENTS ?? '100,500,1000').split(',').map(Number),
  fleetNs: env('BENCH_FLEET_NS', 1000),
  ownPods: env('BENCH_OWN_PODS', 30),
};
// The last commit before issue 14's kube client (its first commit is 8fdfdd4).
const PREVIOUS = 'de159b9717e4';
/** Simulated agents per Node process (sim.mjs): one process for 1,000 would be its own bottleneck. */
const PER_PROCESS = env('BENCH_AGENTS_PER_PROCESS', 250);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = [];
let cleanupCluster;
const log = (s) => process.stderr.write(`[scale ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

const T0 = Date.now();

async function main() {
  const work = join(tmpdir(), `imdsgate-bench-scale-${process.pid}`);
  const base = process.env.BENCH_BASE_REF ?? PREVIOUS;
  const designs = { previous: join(work, 'previous'), new: join(work, 'new') };
  build(designs.previous, base);
  build(designs.new);
  const cluster = await startCluster(join(work, 'cluster'));
  cleanupCluster = () => cluster.stop().then(() => rmSync(work, { recursive: true, force: true }));
  try {
    const k = await pop.adminClient(join(designs.new, 'dist'), cluster.adminKc);
    await pop.grantAgent(k, cluster.agentUser);
    await pop.namespaces(k, 0, 1);
    await pop.defaultServiceAccount(k);
    await pop.podsOnNode(k, 'bench-node-0', SIZE.ownPods, '169.254');
    const aux = await auxiliaries(work);
    const growth = [];
    const fleet = {};
    const only = process.env.BENCH_ONLY;
    // What is measured so far, rewritten after every step: a run that dies late still leaves its data.
    const partial = process.env.BENCH_PARTIAL ?? join(tmpdir(), 'imdsgate-bench-scale-partial.json');
    const save = () => writeFileSync(partial, JSON.stringify({ size: SIZE, base, growth, fleet }));
    const have = { pods: 0, ns: 1, sa: 0 };
    const measureAll = async (dim) => {
      if (only === 'fleet') return;
      const step = { dim, ...have };
      for (const [design, dir] of Object.entries(designs)) {
        growth.push({ ...step, design, ...(await measureAgent(dir, cluster.agentKc, aux)) });
        log(`${JSON.stringify(step)} ${design}: ${JSON.stringify(growth.at(-1))}`);
        save();
      }
    };
    /** Grows one dimension to `to` with `fill(from, to)`, logging progress, then measures both agents. */
    const grow = async (dim, to, fill) => {
      const t = Date.now();
      const from = have[dim];
      for (let at = from; at < to;) {
        const next = Math.min(to, at + 10_000);
        await fill(at, next);
        at = next;
        log(`${dim}: ${at}/${to} (${Math.round(((at - from) * 1000) / (Date.now() - t))}/s)`);
      }
      have[dim] = Math.max(from, to);
      await measureAll(dim);
    };
    await measureAll('empty');
    for (const to of [SIZE.pods / 5, SIZE.pods].map(Math.round))
      await grow('pods', to, (a, b) => pop.podsElsewhere(k, a, b, SIZE.nodes));
    await grow('ns', Math.min(SIZE.fleetNs, SIZE.ns), (a, b) => pop.namespaces(k, a, b));
    // The fleet runs here, before the service accounts are added and with BENCH_FLEET_NS namespaces: the
    // previous design keeps every full service account and namespace in each simulated agent, which for
    // 1,000 agents × 50,000 service accounts would be ~50 GB on a 24 GB machine, and 2 shared cores
    // cannot parse that much JSON in a bounded run either.
    for (const N of only === 'growth' ? [] : SIZE.agents) {
      for (const [design, dir] of Object.entries(designs)) {
        (fleet[design] ??= {})[N] = await measureFleet(join(dir, 'dist'), cluster, N).catch(async (err) => {
          // Recorded, not fatal: the API server exiting under the load is a result too.
          const failed = { agents: N, error: String(err?.message ?? err), apiLog: cluster.apiLogTail(1500) };
          for (const c of children) if (c.exitCode === null && c.connected) c.kill('SIGKILL');
          await cluster.ensureUp();
          return failed;
        });
        log(`fleet ${design} N=${N}: ${JSON.stringify({ ...fleet[design][N], perSecond: undefined })}`);
        save();
      }
    }
    // What follows only grows the cluster for the one-agent measurements.
    if (only !== 'fleet' && SIZE.ns > SIZE.fleetNs)
      await grow('ns', SIZE.ns, (a, b) => pop.namespaces(k, a, b));
    for (const to of only === 'fleet' ? [] : [SIZE.sa / 5, SIZE.sa / 2, SIZE.sa].map(Math.round))
      await grow('sa', to, (a, b) => pop.serviceAccounts(k, a, b, SIZE.ns));
    await k.close();
    const out = {
      size: SIZE,
      base,
      perProcess: PER_PROCESS,
      generatedAt: new Date().toISOString(),
      wallSeconds: (Date.now() - T0) / 1000,
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
async function measureFleet(dist, cluster, N) {
  await cluster.restart();
  await cluster.ready();
  await sleep(5000);
  const exitsBefore = cluster.unexpectedExits().length;
  const heap = () => cluster.heapMb().catch(() => NaN);
  const heapBefore = await heap();
  const before = cluster.stat();
  const sims = [];
  const messages = [];
  for (let first = 0; first < N; first += PER_PROCESS) {
    const n = Math.min(PER_PROCESS, N - first);
    const sim = fork(join(ROOT, 'bench/scale/sim.mjs'), [dist, cluster.agentKc, String(n), String(first)], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      execArgv: ['--max-old-space-size=6144'],
    });
    children.push(sim);
    const i = sims.push(sim) - 1;
    sim.on('message', (m) => messages.push({ ...m, sim: i }));
  }
  const send = (m) => sims.forEach((s) => s.connected && s.send(m));
  /** The latest message of each process that satisfies pred, once every process has sent one. */
  const all = async (pred, ms) => {
    const end = Date.now() + ms;
    for (;;) {
      const got = sims.map((_, i) => messages.findLast((m) => m.sim === i && pred(m)));
      if (got.every((m) => m !== undefined)) return got;
      if (Date.now() > end || sims.some((s) => s.exitCode !== null)) return undefined;
      await sleep(50);
    }
  };
  const sum = (xs, k) => xs?.reduce((s, m) => s + (m[k] ?? 0), 0);
  const kinds = (xs) => {
    const out = {};
    for (const m of xs ?? [])
      for (const [k, v] of Object.entries(m.errorKinds ?? {})) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  const syncedAll = await all((m) => m.synced !== undefined, 240_000);
  const first = syncedAll && {
    synced: Math.max(...syncedAll.map((m) => m.synced)),
    requests: sum(syncedAll, 'requests'),
    tooMany: sum(syncedAll, 'tooMany'),
    errorKinds: kinds(syncedAll),
  };
  const afterSync = cluster.stat();
  await sleep(10_000);
  const settled = cluster.stat();
  const heapWithAgents = await heap();
  // Restart: from the moment the API server is told to stop until every agent relisted all 3 views.
  send({ cmd: 'mark' });
  await sleep(300);
  messages.length = 0;
  const t0 = Date.now();
  const { stopMs, startedAt } = await cluster.restart('SIGKILL');
  // When the new API server answers /readyz: the part of the resync that is its own start-up.
  let apiReadyMs;
  const apiReady = cluster.ready().then(
    () => (apiReadyMs = Date.now() - startedAt),
    () => undefined,
  );
  const relisted = () =>
    sims.map((_, i) => messages.findLast((m) => m.sim === i && m.relisted !== undefined));
  let back = false;
  for (const end = Date.now() + 180_000; Date.now() < end && sims.every((s) => s.exitCode === null);) {
    if (sum(relisted().filter(Boolean), 'relisted') >= 3 * N) {
      back = true;
      break;
    }
    await sleep(50);
  }
  const resyncMs = back ? Date.now() - startedAt : undefined;
  const resyncFromKillMs = back ? Date.now() - t0 : undefined;
  const cpuResync = cluster.stat().cpuSeconds; // the new process: its own start-up plus the resync
  const afterResync = cluster.stat();
  send({ cmd: 'report' });
  const reps = (await all((m) => m.report !== undefined, 20_000))?.map((m) => m.report) ?? [];
  const perSecond = [];
  for (const r of reps) r.perSecond.forEach((x, i) => (perSecond[i] = (perSecond[i] ?? 0) + x));
  send({ cmd: 'stop' });
  await Promise.all(sims.map((s) => new Promise((r) => (s.exitCode !== null ? r() : s.once('exit', r)))));
  const rep = {
    errorKinds: kinds(reps),
    perSecond: [...perSecond].map((x) => x ?? 0),
    tooMany: sum(reps, 'tooMany'),
    errors: sum(reps, 'errors'),
  };
  // Agents may have relisted before /readyz (it also waits for post-start hooks): wait for it.
  await Promise.race([apiReady, sleep(60_000)]);
  const apiExits = cluster.unexpectedExits().slice(exitsBefore);
  if (apiExits.length > 0) log(`API server exited under N=${N}: ${JSON.stringify(apiExits)}`);
  return {
    agents: N,
    apiExits: apiExits.map(
      (e) => `${e.signal ?? `exit ${e.code}`}: ${e.log.split('\n').filter(Boolean).at(-1) ?? ''}`,
    ),
    firstSyncMs: first?.synced,
    firstSyncRequests: first?.requests,
    firstSync429: first?.tooMany,
    firstSyncErrors: first?.errorKinds,
    apiCpuFirstSyncS: +(afterSync.cpuSeconds - before.cpuSeconds).toFixed(2),
    apiRssBaseMb: +before.rssMb.toFixed(1),
    apiRssWithAgentsMb: +settled.rssMb.toFixed(1),
    apiRssPerAgentKb: Math.round(((settled.rssMb - before.rssMb) * 1024) / N),
    apiHeapBaseMb: +heapBefore.toFixed(1),
    apiHeapWithAgentsMb: +heapWithAgents.toFixed(1),
    apiHeapPerAgentKb: Math.round(((heapWithAgents - heapBefore) * 1024) / N),
    apiStopMs: stopMs,
    resyncMs,
    resyncFromKillMs,
    apiCpuResyncS: +cpuResync.toFixed(2),
    apiRssAfterResyncMb: +afterResync.rssMb.toFixed(1),
    apiCpuFirstSyncPerAgentMs: Math.round(((afterSync.cpuSeconds - before.cpuSeconds) * 1000) / N),
    peakRequestsPerSecond: Math.max(0, ...(rep.perSecond ?? [])),
    resyncRequests: (rep.perSecond ?? []).reduce((s, x) => s + x, 0),
    resync429: rep.tooMany,
    resyncErrors: rep.errors,
    resyncErrorKinds: rep.errorKinds,
    apiReadyMs,
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
