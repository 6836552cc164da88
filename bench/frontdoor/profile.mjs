#!/usr/bin/env node
// Profiling helper for the front door (not a benchmark of record; run.mjs is). Builds the agent, starts
// AEMM + moto + the agent pinned to core 1 with optional node flags (e.g. --cpu-prof), drives ONE
// scenario with autocannon for a bounded time, prints CPU µs/request and RSS, and stops everything.
//   node bench/frontdoor/profile.mjs creds|forward|token [seconds] [node flags...]
// Env: PROFILE_DIR (where --cpu-prof writes, default /tmp/imdsgate-prof), BENCH_LOG_LEVEL (info).
/* global fetch, setTimeout */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { Pool } from 'undici';
import { build, cpuSeconds, freePort, rssMb, waitFor } from './proc.mjs';

const [scenario = 'creds', secs = '5', ...nodeFlags] = process.argv.slice(2);
const ROLE = 'bench-role';
const PATHS = {
  creds: `/latest/meta-data/iam/security-credentials/${ROLE}`,
  forward: '/latest/meta-data/instance-id',
};
const children = [];

const smapsMb = (pid, field) =>
  Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))[1]) / 1024;

/**
 * Experiment knob (never used by run.mjs): swaps the log destination serve.js builds (the batched one,
 * src/log-destination.ts) for pino.destination in async (sonic-boom sync: false) or sync mode.
 */
function patchLogDestination(file, kind) {
  const from = 'createBatchedDestination(1)';
  const to = {
    async: "(await import('pino')).pino.destination({ dest: 1, sync: false })",
    sync: "(await import('pino')).pino.destination({ dest: 1, sync: true })",
  }[kind];
  const src = readFileSync(file, 'utf8');
  if (!src.includes(from) || to === undefined) throw new Error(`cannot patch the log destination to ${kind}`);
  writeFileSync(file, src.replace(from, to));
}

async function main() {
  const cache = process.env.IMDSGATE_TESTENV_CACHE ?? join(homedir(), '.cache/imdsgate-testenv');
  const work = join(tmpdir(), `imdsgate-prof-${process.pid}`);
  build(work);
  if (process.env.PROFILE_LOG_DEST)
    patchLogDestination(join(work, 'dist/serve.js'), process.env.PROFILE_LOG_DEST);
  const ids = join(work, 'identity.yaml');
  writeFileSync(
    ids,
    `pods: [{ ip: 127.0.0.1, namespace: bench, name: bench-0, serviceAccount: bench, roleArn: "arn:aws:iam::123456789012:role/${ROLE}" }]\n`,
  );
  const [aemmPort, motoPort, port, mport] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const aemm = `http://127.0.0.1:${aemmPort}`;
  const spawnIt = (cmd, args, env) => {
    const c = spawn(cmd, args, {
      env,
      stdio: ['ignore', 'ignore', process.env.BENCH_VERBOSE ? 'inherit' : 'ignore'],
      cwd: work,
    });
    children.push(c);
    return c;
  };
  spawnIt(
    'taskset',
    ['-c', '0', join(cache, 'venv/bin/moto_server'), '-H', '127.0.0.1', '-p', String(motoPort)],
    {
      PATH: process.env.PATH,
    },
  );
  spawnIt(
    'taskset',
    [
      '-c',
      process.env.AEMM_CPU ?? '0',
      join(cache, 'bin/ec2-metadata-mock'),
      '-n',
      '127.0.0.1',
      '-p',
      String(aemmPort),
    ],
    {
      HOME: work,
      GOMAXPROCS: '1',
      PATH: process.env.PATH,
    },
  );
  await waitFor(`${aemm}/latest/meta-data/instance-id`);
  await waitFor(`http://127.0.0.1:${motoPort}/moto-api/`);
  const profDir = process.env.PROFILE_DIR ?? '/tmp/imdsgate-prof';
  mkdirSync(profDir, { recursive: true });
  const agent = spawnIt(
    'taskset',
    [
      '-c',
      '1',
      process.execPath,
      ...nodeFlags.map((f) => f.replace('{dir}', profDir)),
      join(work, 'dist/main.js'),
      'serve',
      `--listen=127.0.0.1:${port}`,
      `--metrics-listen=127.0.0.1:${mport}`,
      `--upstream=${aemm}`,
      `--identity-file=${ids}`,
      `--sts-endpoint=http://127.0.0.1:${motoPort}`,
      '--region=us-east-1',
      `--log-level=${process.env.BENCH_LOG_LEVEL ?? 'info'}`,
    ],
    { ...process.env, IMDSGATE_MANAGE_RULES: 'false' },
  );
  await waitFor(`http://127.0.0.1:${mport}/readyz`);
  const idle = rssMb(agent.pid);
  const idleAnon = smapsMb(agent.pid, 'Anonymous');
  if (scenario === 'latency') {
    // Sequential requests (one in flight): the latency the agent adds to a forwarded path, without queueing.
    const seq = async (origin, path, n) => {
      const pool = new Pool(origin, { connections: 1 });
      const lat = [];
      for (let i = 0; i < n; i++) {
        const t = process.hrtime.bigint();
        const res = await pool.request({ path, method: 'GET' });
        await res.body.arrayBuffer();
        lat.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      await pool.close();
      lat.sort((a, b) => a - b);
      return { p50: +lat[n >> 1].toFixed(3), p90: +lat[Math.floor(n * 0.9)].toFixed(3) };
    };
    for (let round = 0; round < 3; round++) {
      const agentF = await seq(`http://127.0.0.1:${port}`, PATHS.forward, 2000);
      const direct = await seq(aemm, PATHS.forward, 2000);
      const creds = await seq(`http://127.0.0.1:${port}`, PATHS.creds, 2000);
      process.stdout.write(`${JSON.stringify({ round, agentForward: agentF, direct, creds })}\n`);
    }
    agent.kill('SIGTERM');
    return;
  }
  const url = `http://127.0.0.1:${port}${PATHS[scenario] ?? PATHS.creds}`;
  if ((await fetch(url)).status !== 200) throw new Error('warm-up failed');
  // Warm-up so the JIT has settled, then the measured run.
  await autocannon({ url, connections: 32, duration: 2 });
  // PERF_OUT=file: a CPU-time profile of the agent (kernel included) with `perf record` during the run;
  // pair it with the node flag --perf-basic-prof so JIT frames have names.
  const perf = process.env.PERF_OUT
    ? spawn(
        'perf',
        [
          'record',
          '-e',
          'cpu-clock',
          '-F',
          '2000',
          '-g',
          '-p',
          String(agent.pid),
          '-o',
          process.env.PERF_OUT,
        ],
        {
          stdio: 'ignore',
        },
      )
    : undefined;
  const before = cpuSeconds(agent.pid);
  const r = await autocannon({ url, connections: 32, duration: Number(secs) });
  if (perf) {
    perf.kill('SIGINT');
    await new Promise((res) => perf.once('exit', res));
  }
  const cpu = cpuSeconds(agent.pid) - before;
  const out = {
    scenario,
    nodeFlags,
    rps: Math.round(r.requests.average),
    total: r.requests.total,
    non2xx: r.non2xx,
    errors: r.errors,
    cpuUsPerReq: +((cpu * 1e6) / r.requests.total).toFixed(1),
    rssIdleMb: +idle.toFixed(1),
    anonIdleMb: +idleAnon.toFixed(1),
    rssAfterMb: +rssMb(agent.pid).toFixed(1),
    anonAfterMb: +smapsMb(agent.pid, 'Anonymous').toFixed(1),
    fileAfterMb: +(smapsMb(agent.pid, 'Private_Clean') + smapsMb(agent.pid, 'Shared_Clean')).toFixed(1),
    rssLaterMb: process.env.PROFILE_RSS_WAIT
      ? await new Promise((res) =>
          setTimeout(() => res(+rssMb(agent.pid).toFixed(1)), Number(process.env.PROFILE_RSS_WAIT)),
        )
      : undefined,
    loadavg: loadavg().map((x) => +x.toFixed(2)),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  // With --report-on-signal in the node flags: a diagnostic report (heap spaces, handles) after the run.
  if (nodeFlags.includes('--report-on-signal')) {
    agent.kill('SIGUSR2');
    await new Promise((res) => setTimeout(res, 1500));
  }
  agent.kill('SIGTERM');
  await new Promise((r) => agent.once('exit', r));
  rmSync(work, { recursive: true, force: true });
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  });
