#!/usr/bin/env node
// Node/V8 flag A/B for the agent: interleaved arms in ONE run against the same AEMM and moto.
// Each round starts every arm (in a rotated order) as a fresh `imdsgate serve` pinned to core 1, warms it
// up, drives BENCH_AMOUNT cached credential GETs with autocannon, and reads the agent's CPU per
// request and its RSS idle, right after and BENCH_SETTLE_S later (V8's memory reducer returns memory only
// after a few idle seconds). Each round also measures the hello-world fastify on the same core (the
// yardstick for CPU per request on the machine's state at that moment). Medians over BENCH_REPEAT rounds.
//   BENCH_ARMS='shipped;default;--max-semi-space-size=1' node bench/frontdoor/flags.mjs
// 'shipped' = the flags in src/main.ts's shebang, 'default' = Node's own defaults (both with --no-warnings).
// BENCH_PROBE=file.mjs adds `--import file.mjs` to every agent and sends it SIGUSR2 at each RSS reading
// (a memory breakdown preload; the probe writes where it likes). Writes JSON lines to stdout.
/* global URL, setTimeout */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { build, cpuSeconds, freePort, rssMb, shippedNodeFlags, waitFor } from './proc.mjs';

// A fixed number of requests per arm, not a fixed time: RSS after a burst grows with the requests served,
// and on a shared machine the same seconds serve very different numbers of requests.
const AMOUNT = Number(process.env.BENCH_AMOUNT ?? 60_000);
const REPEAT = Number(process.env.BENCH_REPEAT ?? 3);
const SETTLE_S = Number(process.env.BENCH_SETTLE_S ?? 15);
const ROLE = 'bench-role';
const CREDS = `/latest/meta-data/iam/security-credentials/${ROLE}`;
const children = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function start(cmd, args, env) {
  const c = spawn(cmd, args, {
    env,
    stdio: ['ignore', 'ignore', process.env.BENCH_VERBOSE ? 'inherit' : 'ignore'],
  });
  children.push(c);
  return c;
}
const stop = async (c) => {
  if (c.exitCode !== null) return;
  c.kill('SIGTERM');
  await new Promise((r) => c.once('exit', r));
};
const anonMb = (pid) =>
  Number(/Anonymous:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))[1]) / 1024;
const median = (xs) => {
  const v = [...xs].sort((p, q) => p - q);
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};

/** CPU µs per request and req/s of one autocannon run against a server process. */
async function load(pid, url, amount) {
  const before = cpuSeconds(pid);
  const r = await autocannon({ url, connections: 32, amount });
  if (r.non2xx || r.errors) throw new Error(`${url}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return {
    rps: Math.round(r.requests.average),
    cpuUs: ((cpuSeconds(pid) - before) * 1e6) / r.requests.total,
  };
}

async function main() {
  const cache = process.env.IMDSGATE_TESTENV_CACHE ?? join(homedir(), '.cache/imdsgate-testenv');
  const work = join(tmpdir(), `imdsgate-flags-${process.pid}`);
  build(work);
  const main = join(work, 'dist/main.js');
  const shipped = shippedNodeFlags(main);
  const arms = (process.env.BENCH_ARMS ?? 'shipped;default').split(';').map((a) => ({
    name: a,
    flags: a === 'shipped' ? shipped : a === 'default' ? ['--no-warnings'] : a.split(' ').filter(Boolean),
  }));
  const ids = join(work, 'identity.yaml');
  writeFileSync(
    ids,
    `pods: [{ ip: 127.0.0.1, namespace: bench, name: bench-0, serviceAccount: bench, roleArn: "arn:aws:iam::123456789012:role/${ROLE}" }]\n`,
  );
  for (const f of ['bin/ec2-metadata-mock', 'venv/bin/moto_server'])
    if (!existsSync(join(cache, f))) throw new Error(`${f} missing: run npm run testenv:up once`);
  const [aemmPort, motoPort, helloPort] = [await freePort(), await freePort(), await freePort()];
  start(
    'taskset',
    ['-c', '0', join(cache, 'venv/bin/moto_server'), '-H', '127.0.0.1', '-p', String(motoPort)],
    {
      PATH: process.env.PATH,
    },
  );
  start(
    'taskset',
    ['-c', '0', join(cache, 'bin/ec2-metadata-mock'), '-n', '127.0.0.1', '-p', String(aemmPort)],
    {
      HOME: work,
      GOMAXPROCS: '1',
      PATH: process.env.PATH,
    },
  );
  const hello = start(
    'taskset',
    ['-c', '1', process.execPath, new URL('hello.mjs', import.meta.url).pathname, String(helloPort)],
    process.env,
  );
  await waitFor(`http://127.0.0.1:${aemmPort}/latest/meta-data/instance-id`);
  await waitFor(`http://127.0.0.1:${motoPort}/moto-api/`);
  await waitFor(`http://127.0.0.1:${helloPort}/`);
  await load(hello.pid, `http://127.0.0.1:${helloPort}/`, 20_000);

  const probe = process.env.BENCH_PROBE ? ['--import', process.env.BENCH_PROBE] : [];
  const rows = [];
  for (let round = 0; round < REPEAT; round++) {
    const order = arms.map((_, i) => arms[(i + round) % arms.length]);
    for (const arm of order) {
      const [port, mport] = [await freePort(), await freePort()];
      const agent = start(
        'taskset',
        [
          '-c',
          '1',
          process.execPath,
          ...arm.flags,
          ...probe,
          main,
          'serve',
          `--listen=127.0.0.1:${port}`,
          `--metrics-listen=127.0.0.1:${mport}`,
          `--upstream=http://127.0.0.1:${aemmPort}`,
          `--identity-file=${ids}`,
          `--sts-endpoint=http://127.0.0.1:${motoPort}`,
          '--region=us-east-1',
          '--log-level=info',
        ],
        { ...process.env, IMDSGATE_MANAGE_RULES: 'false', PROBE_ARM: arm.name, PROBE_ROUND: String(round) },
      );
      await waitFor(`http://127.0.0.1:${mport}/readyz`);
      const url = `http://127.0.0.1:${port}${CREDS}`;
      await sleep(1000);
      const mark = async () => {
        if (probe.length) {
          agent.kill('SIGUSR2');
          await sleep(300);
        }
        return { rss: rssMb(agent.pid), anon: anonMb(agent.pid) };
      };
      const idle = await mark();
      await load(agent.pid, url, 20_000); // warm-up: the JIT settles, the credentials are cached
      const r = await load(agent.pid, url, AMOUNT);
      const after = await mark();
      await sleep(SETTLE_S * 1000);
      const settled = await mark();
      await stop(agent);
      const h = await load(hello.pid, `http://127.0.0.1:${helloPort}/`, AMOUNT);
      const row = {
        round,
        arm: arm.name,
        ...r,
        helloCpuUs: h.cpuUs,
        idle,
        after,
        settled,
        load1: loadavg()[0],
      };
      rows.push(row);
      process.stdout.write(`${JSON.stringify(row)}\n`);
    }
  }
  for (const arm of arms) {
    const rs = rows.filter((r) => r.arm === arm.name);
    const m = (get) => +median(rs.map(get)).toFixed(1);
    process.stdout.write(
      `${JSON.stringify({
        summary: arm.name,
        flags: arm.flags.join(' '),
        cpuUs: m((r) => r.cpuUs),
        rps: m((r) => r.rps),
        cpuVsHello: m((r) => r.cpuUs / r.helloCpuUs),
        helloCpuUs: m((r) => r.helloCpuUs),
        rssIdle: m((r) => r.idle.rss),
        rssAfter: m((r) => r.after.rss),
        rssSettled: m((r) => r.settled.rss),
        anonAfter: m((r) => r.after.anon),
        anonSettled: m((r) => r.settled.anon),
        loadavg: loadavg().map((x) => +x.toFixed(2)),
      })}\n`,
    );
  }
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
