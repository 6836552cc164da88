// A private control plane for the scale benchmark: the test environment's own pinned etcd and
// kube-apiserver binaries (~/.cache/imdsgate-testenv/bin, built by test/env/up), started here with a
// throwaway PKI and data directory. Private because the benchmark fills the cluster with tens of
// thousands of objects and restarts the API server, which the shared test environment's users must not
// see; everything lives under one temp dir and is removed by stop().
/* global fetch, setTimeout */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { readFileSync } from 'node:fs';
import { freePort } from '../frontdoor/proc.mjs';

export const AGENT_USER = 'system:serviceaccount:kube-system:imdsgate-bench';
const BIN = join(process.env.IMDSGATE_TESTENV_CACHE ?? join(homedir(), '.cache/imdsgate-testenv'), 'bin');

function pki(dir) {
  mkdirSync(dir, { recursive: true });
  const ossl = (...a) => execFileSync('openssl', a, { cwd: dir, stdio: 'ignore' });
  ossl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-subj',
    '/CN=bench-ca',
  );
  const sign = (name, subj, ext) => {
    ossl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      subj,
    );
    writeFileSync(join(dir, `${name}.ext`), ext);
    ossl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    );
  };
  sign('apiserver', '/CN=kube-apiserver', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  sign('admin', '/O=system:masters/CN=bench-admin', 'extendedKeyUsage=clientAuth\n');
  // The simulated agents: the user and groups of a service account (RBAC in populate.mjs), so API Priority
  // and Fairness classifies them as it classifies the DaemonSet's service account (FlowSchema
  // service-accounts, priority level workload-low), not as exempt system:masters. All share one user, as
  // every node's agent does.
  sign(
    'agent',
    `/O=system:serviceaccounts/O=system:serviceaccounts:kube-system/CN=${AGENT_USER}`,
    'extendedKeyUsage=clientAuth\n',
  );
  ossl('genrsa', '-out', 'sa.key', '2048');
  ossl('rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub');
}

const kubeconfig = (server, dir, user) =>
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server, 'certificate-authority': join(dir, 'ca.crt') } }],
    users: [
      {
        name: 'u',
        user: { 'client-certificate': join(dir, `${user}.crt`), 'client-key': join(dir, `${user}.key`) },
      },
    ],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'x',
  });

const procStat = (pid) => {
  // A process that has exited (the API server can die under a fleet's load): no figures, not a crash.
  if (!existsSync(`/proc/${pid}/stat`)) return { cpuSeconds: NaN, rssMb: NaN, gone: true };
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
  return { cpuSeconds: (Number(f[11]) + Number(f[12])) / 100, rssMb: rss };
};

export async function startCluster(root, { apfLimit } = {}) {
  const dir = join(root, 'pki');
  pki(dir);
  const [etcdPort, peerPort, port] = [await freePort(), await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const log = () => (process.env.BENCH_VERBOSE ? 'inherit' : 'ignore');
  const etcd = spawn(
    join(BIN, 'etcd'),
    [
      '--name',
      'bench',
      '--data-dir',
      join(root, 'etcd'),
      '--listen-client-urls',
      etcdUrl,
      '--advertise-client-urls',
      etcdUrl,
      '--listen-peer-urls',
      `http://127.0.0.1:${peerPort}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${peerPort}`,
      '--initial-cluster',
      `bench=http://127.0.0.1:${peerPort}`,
      '--unsafe-no-fsync',
      '--log-level',
      'error',
      '--quota-backend-bytes',
      String(2 * 2 ** 30),
    ],
    { stdio: ['ignore', 'ignore', log()] },
  );
  const server = `https://127.0.0.1:${port}`;
  const args = [
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${port}`,
    `--etcd-servers=${etcdUrl}`,
    `--tls-cert-file=${dir}/apiserver.crt`,
    `--tls-private-key-file=${dir}/apiserver.key`,
    `--client-ca-file=${dir}/ca.crt`,
    '--authorization-mode=RBAC',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${dir}/sa.pub`,
    `--service-account-signing-key-file=${dir}/sa.key`,
    '--service-cluster-ip-range=169.254.241.0/24',
    // For /debug/pprof/heap?gc=1, which runs a garbage collection: the live heap per agent (heapMb below)
    // instead of an RSS that depends on when the Go runtime last collected.
    '--profiling=true',
    '--v=0',
    // A small server, as the 2 shared cores are: APF's seats scale with these (defaults 400/200).
    ...(apfLimit
      ? [`--max-requests-inflight=${apfLimit}`, `--max-mutating-requests-inflight=${Math.ceil(apfLimit / 2)}`]
      : []),
  ];
  let api;
  // Its stderr (klog, --v=0) is kept, so that a run can say why the API server exited.
  let apiLog = '';
  let stopping = false;
  const exits = [];
  const startApi = () => {
    api = spawn(join(BIN, 'kube-apiserver'), args, { stdio: ['ignore', 'ignore', 'pipe'] });
    api.once('exit', (code, signal) => {
      if (!stopping) exits.push({ code, signal, at: Date.now(), log: apiLog.slice(-1500) });
    });
    api.stderr.on('data', (b) => {
      if (process.env.BENCH_VERBOSE) process.stderr.write(b);
      apiLog = (apiLog + b).slice(-20_000);
    });
    return api;
  };
  startApi();
  const adminKc = join(root, 'admin.kubeconfig');
  const agentKc = join(root, 'agent.kubeconfig');
  writeFileSync(adminKc, kubeconfig(server, dir, 'admin'));
  writeFileSync(agentKc, kubeconfig(server, dir, 'agent'));
  const tls = new Agent({
    connect: {
      ca: readFileSync(join(dir, 'ca.crt')),
      cert: readFileSync(join(dir, 'admin.crt')),
      key: readFileSync(join(dir, 'admin.key')),
    },
  });
  const ready = async (ms = 180_000) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      try {
        const r = await fetch(`${server}/readyz`, { dispatcher: tls });
        if (r.ok) return;
      } catch {
        /* not yet */
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error('private kube-apiserver not ready');
  };
  await ready();
  const stopApi = async (signal = 'SIGTERM') => {
    const p = api;
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    stopping = true;
    p.kill(signal);
    await exited;
    stopping = false;
  };
  return {
    server,
    adminKc,
    agentKc,
    agentUser: AGENT_USER,
    ready,
    stat: () => procStat(api.pid),
    /** The API server's Go heap in use, in MB, right after a forced garbage collection. */
    async heapMb() {
      const r = await fetch(`${server}/debug/pprof/heap?gc=1`, { dispatcher: tls });
      await r.arrayBuffer();
      const text = await (await fetch(`${server}/metrics`, { dispatcher: tls })).text();
      const m = /^go_memstats_heap_inuse_bytes (\S+)$/m.exec(text);
      return m === null ? NaN : Number(m[1]) / 2 ** 20;
    },
    apiLogTail: (n = 2000) => apiLog.slice(-n),
    /** Exits of the API server that stop()/restart() did not ask for, with the end of its log. */
    unexpectedExits: () => [...exits],
    /** Starts the API server again if it has exited, and waits until it is ready. */
    async ensureUp() {
      if (api.exitCode !== null || api.signalCode !== null) startApi();
      await ready();
    },
    etcdStat: () => procStat(etcd.pid),
    /** Stops the API server and starts it again at once (clients see a connection drop). */
    /** signal SIGKILL: a crash (the API server's graceful stop waits up to 60 s for its watches). */
    async restart(signal) {
      const t = Date.now();
      await stopApi(signal);
      const stopMs = Date.now() - t;
      startApi();
      return { stopMs, startedAt: Date.now() };
    },
    async stop() {
      await stopApi().catch(() => undefined);
      etcd.kill('SIGTERM');
      await new Promise((r) => (etcd.exitCode !== null ? r() : etcd.once('exit', r)));
      await tls.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
