#!/usr/bin/env node
// One-pod flood: agent memory and a neighbour's latency while one source holds as many idle and
// slow-header connections as it can (issue 11). Same run, same machine, three phases per agent:
//   baseline  - the neighbour (127.0.0.3) asks for its credentials, paced, nothing else going on;
//   flood     - the same while flooder.mjs (127.0.0.2) keeps up to FLOOD_TARGET connections open;
// for the shipped limits and for the limits raised out of the way (what the agent was before them).
// The agent runs built, as the image runs it (its shebang flags), pinned to core 1; the flooder to core 0.
// Self-contained (loopback stand-ins for IMDS and STS, standins.mjs). Writes bench/flood/RESULTS.md.
/* global URL, fetch, performance, setTimeout, setInterval, clearInterval */
import { spawn } from 'node:child_process';
import { cpus, loadavg, tmpdir } from 'node:os';
import { request } from 'node:http';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, cpuSeconds, freePort, rssMb, shippedNodeFlags, waitFor } from '../frontdoor/proc.mjs';
import { NODE_SECRET, startStandins } from './standins.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TARGET = Number(process.env.FLOOD_TARGET ?? 15_000);
const FLOOD_S = Number(process.env.FLOOD_SECONDS ?? 20);
const BASE_S = Number(process.env.BASELINE_SECONDS ?? 6);
const REPEAT = Number(process.env.BENCH_REPEAT ?? 3);
const RATE = Number(process.env.NEIGHBOUR_RATE ?? 50);
const CREDS = '/latest/meta-data/iam/security-credentials/flood-role';
const VARIANTS = [
  { name: 'shipped limits', args: [] },
  {
    name: 'limits raised out of the way',
    args: ['--max-connections=65536', '--max-connections-per-source=65536', '--headers-timeout-ms=60000'],
  },
];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One request on a fresh connection from the neighbour's address: [ms, status, body]. */
function neighbourGet(port) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = request(
      { host: '127.0.0.1', port, path: CREDS, localAddress: '127.0.0.3', agent: false, timeout: 5000 },
      (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve([performance.now() - t0, res.statusCode, body]));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve([performance.now() - t0, 0, '']));
    req.end();
  });
}

async function paced(port, seconds) {
  const lat = [];
  let errors = 0;
  let leaks = 0;
  const all = [];
  for (let i = 0; i < seconds * RATE; i++) {
    all.push(
      neighbourGet(port).then(([ms, status, body]) => {
        if (status !== 200) errors++;
        if (body.includes(NODE_SECRET)) leaks++;
        lat.push(ms);
      }),
    );
    await sleep(1000 / RATE);
  }
  await Promise.all(all);
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))];
  return { n: lat.length, errors, leaks, p50: q(0.5), p99: q(0.99), max: lat.at(-1) };
}

async function variant(work, standins, v) {
  const [port, mport] = [await freePort(), await freePort()];
  const agent = spawn(
    'taskset',
    [
      '-c',
      '1',
      process.execPath,
      ...shippedNodeFlags(join(work, 'dist/main.js')),
      join(work, 'dist/main.js'),
      'serve',
      `--listen=127.0.0.1:${port}`,
      `--metrics-listen=127.0.0.1:${mport}`,
      `--upstream=${standins.imds}`,
      `--sts-endpoint=${standins.sts}`,
      `--identity-file=${join(work, 'ids.yaml')}`,
      '--region=us-east-1',
      `--log-level=${process.env.BENCH_VERBOSE ? 'info' : 'warn'}`,
      ...v.args,
    ],
    {
      env: { ...process.env, IMDSGATE_MANAGE_RULES: 'false' },
      stdio: ['ignore', process.env.BENCH_VERBOSE ? 'inherit' : 'ignore', 'inherit'],
    },
  );
  try {
    await waitFor(`http://127.0.0.1:${mport}/readyz`);
    const [, warm] = await neighbourGet(port);
    if (warm !== 200) throw new Error(`${v.name}: the neighbour's warm-up answered ${warm}`);
    const base = await paced(port, BASE_S);
    const rssBefore = rssMb(agent.pid);
    const cpu0 = cpuSeconds(agent.pid);
    const t0 = performance.now();
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMb(agent.pid))), 250);
    const flooder = spawn(
      'taskset',
      [
        '-c',
        '0',
        process.execPath,
        join(ROOT, 'bench/flood/flooder.mjs'),
        String(port),
        '127.0.0.2',
        String(TARGET),
        String(FLOOD_S),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    flooder.stdout.on('data', (c) => (out += c));
    const done = new Promise((r) => flooder.on('exit', r));
    await sleep(3000); // let the flood build up before measuring the neighbour
    const flood = await paced(port, Math.max(1, FLOOD_S - 6));
    await done;
    clearInterval(sampler);
    const cpuShare = (cpuSeconds(agent.pid) - cpu0) / ((performance.now() - t0) / 1000);
    const metrics = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
    const refused = metrics.split('\n').filter((l) => l.startsWith('imdsgate_connections_refused_total{'));
    return {
      name: v.name,
      base,
      flood,
      rssBefore,
      rssPeak,
      alive: agent.exitCode === null,
      flooder: JSON.parse(out || '{}'),
      refused,
      cpuShare,
    };
  } finally {
    agent.kill();
  }
}

const fmt = (x) => x.toFixed(2);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

/** One row per variant: the median over its runs of each number. */
function row(name, runs) {
  const m = (f) => median(runs.map(f));
  const [b50, b99, f50, f99] = [
    m((r) => r.base.p50),
    m((r) => r.base.p99),
    m((r) => r.flood.p50),
    m((r) => r.flood.p99),
  ];
  const errors = runs.reduce((n, r) => n + r.base.errors + r.flood.errors, 0);
  return (
    `| ${name} | ${m((r) => r.rssBefore).toFixed(1)} | ${m((r) => r.rssPeak).toFixed(1)} | ` +
    `${runs.every((r) => r.alive) ? 'yes' : '**no**'} | ${fmt(b50)} / ${fmt(b99)} | ${fmt(f50)} / ${fmt(f99)} | ` +
    `${m((r) => r.flood.p50 / r.base.p50).toFixed(2)} | ${errors} | ${m((r) => r.flooder.maxOpen ?? 0)} | ` +
    `${Math.round(m((r) => r.cpuShare) * 100)} % |`
  );
}

function report(byVariant) {
  const details = VARIANTS.flatMap((v) =>
    byVariant
      .get(v.name)
      .map(
        (r, i) =>
          `- ${v.name}, run ${i + 1}: RSS ${r.rssBefore.toFixed(1)} → ${r.rssPeak.toFixed(1)} MB; neighbour ` +
          `${fmt(r.base.p50)}/${fmt(r.base.p99)} → ${fmt(r.flood.p50)}/${fmt(r.flood.p99)} ms; flooder ` +
          `${JSON.stringify(r.flooder)}; ${r.refused.join(', ') || 'no refusals'}; node secret seen ` +
          `${r.base.leaks + r.flood.leaks} times`,
      ),
  );
  return [
    '# One-pod flood (bench/flood)',
    '',
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, shared with other sessions (load average`,
    `${loadavg()[0].toFixed(2)} at the end), Node ${process.version}. The agent is built from this tree and run as the image`,
    'runs it (shebang flags), pinned to core 1; the flooder is pinned to core 0. Flooder: one source (127.0.0.2)',
    `keeps up to ${TARGET} connections open for ${FLOOD_S} s, half idle, half slow-header (a byte every 2 s), and opens a`,
    'new one whenever the agent closes or refuses one (at most 2,000/s). Neighbour: another source (127.0.0.3)',
    `GETs its credentials at ${RATE} req/s, a fresh connection each, ${BASE_S} s alone and then during the flood, in`,
    `the same run against the same agent. Medians of ${REPEAT} runs per variant; latency in ms.`,
    'Reproduce: `node bench/flood/run.mjs` (about three minutes).',
    '',
    '| agent | RSS before (MB) | RSS peak in flood (MB) | alive | neighbour p50 / p99 alone | p50 / p99 in flood | p50 ratio flood/alone | neighbour errors (all runs) | flooder max open | agent CPU in flood (of a core) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...VARIANTS.map((v) => row(v.name, byVariant.get(v.name))),
    '',
    ...details,
    '',
  ].join('\n');
}

const work = join(tmpdir(), `imdsgate-flood-${process.pid}`);
build(work);
writeFileSync(
  join(work, 'ids.yaml'),
  'pods:\n' +
    ['127.0.0.2', '127.0.0.3']
      .map(
        (ip, i) =>
          `  - { ip: ${ip}, namespace: flood, name: pod-${i}, serviceAccount: sa, roleArn: "arn:aws:iam::123456789012:role/flood-role" }\n`,
      )
      .join(''),
);
const standins = await startStandins();
const byVariant = new Map(VARIANTS.map((v) => [v.name, []]));
try {
  for (let i = 0; i < REPEAT; i++)
    for (const v of VARIANTS) {
      const r = await variant(work, standins, v);
      byVariant.get(v.name).push(r);
      process.stderr.write(JSON.stringify(r) + '\n');
    }
} finally {
  standins.close();
  rmSync(work, { recursive: true, force: true });
}
writeFileSync(process.env.BENCH_OUT ?? join(ROOT, 'bench/flood/RESULTS.md'), report(byVariant));
process.exit(0);
