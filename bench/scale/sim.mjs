// N simulated agents in one process (forked by run.mjs): each runs the agent's OWN kube client, pod
// watcher and namespace/service-account views from a built dist (this tree's or an earlier commit's),
// with its own connection pool, for node bench-node-<i>. Nothing else of the agent runs (no front door,
// no STS): this is what one node costs the API server.
//   fork(sim.mjs, [distDir, kubeconfig, N, first])   agents bench-node-<first>..<first+N-1>
//   messages in: {cmd:'mark'|'report'|'stop'}; out: {synced}, {relisted}, {report}
// run.mjs forks several of these for a large N (a Node process per 250 agents), so that one process's heap
// and event loop do not cap the fleet.
/* global setInterval, clearInterval */
import { join } from 'node:path';
import { Writable } from 'node:stream';

const [dist, kubeconfig, nArg, firstArg = '0'] = process.argv.slice(2);
const N = Number(nArg);
const FIRST = Number(firstArg);
const imp = (p) => import(join(dist, p));
const { fromKubeconfigFile } = await imp('kube/kubeconfig.js');
const { createKubeClient } = await imp('kube/rest.js');
const { startPodWatcher } = await imp('pods/watcher.js');
const { startNamespaceView, startServiceAccountView } = await imp('kube/views.js');
const { createMetrics } = await imp('metrics.js');
const { createLogger } = await imp('logger.js');
const { Registry } = await import('prom-client');

const metrics = createMetrics(new Registry(), { defaults: false });
const logger = createLogger('error', new Writable({ write: (_c, _e, cb) => cb() }));
const target = fromKubeconfigFile(kubeconfig);

// Counters: requests started per second since the mark, 429s, and which (agent, path) relisted since it.
let mark = Date.now();
let perSecond = [];
let tooMany = 0;
let errors = 0;
/** Failed requests other than 429, by kind: HTTP status, timeout (the client's deadline), refused, other. */
let errorKinds = {};
const kindOf = (err) => {
  const m = String(err?.message ?? '');
  if (typeof err?.code === 'number') return `http_${err.code}`;
  if (/timed out|timeout/i.test(m)) return 'timeout';
  if (/ECONNREFUSED/.test(m + String(err?.cause?.code ?? ''))) return 'refused';
  return 'other';
};
const relisted = new Set();
const count = () => {
  const s = Math.floor((Date.now() - mark) / 1000);
  perSecond[s] = (perSecond[s] ?? 0) + 1;
};
const note = (err) => {
  if (err?.code === 429) tooMany += 1;
  else {
    errors += 1;
    const k = kindOf(err);
    errorKinds[k] = (errorKinds[k] ?? 0) + 1;
  }
  throw err;
};

function counted(client, id) {
  return {
    ...client,
    server: client.server,
    request: (...a) => (count(), client.request(...a).catch(note)),
    list: async (path, ...rest) => {
      count();
      const started = Date.now();
      const r = await client.list(path, ...rest).catch(note);
      // Only a list that started after the mark proves a resync against the new API server.
      if (started >= mark) relisted.add(`${id}|${path}`);
      return r;
    },
    watch: (...a) => (count(), client.watch(...a).catch(note)),
    close: () => client.close(),
  };
}

const agents = [];
const t0 = Date.now();
for (let i = 0; i < N; i++) {
  const client = counted(createKubeClient(target), i);
  const nodeName = `bench-node-${FIRST + i}`;
  const viewOpts = { clock: Date.now, maxStalenessSeconds: 0 };
  const pods = startPodWatcher({ client, nodeName, unknownPodWaitMs: 0, clock: Date.now, metrics, logger });
  const ns = startNamespaceView(client, logger, viewOpts);
  const sa = startServiceAccountView(client, logger, viewOpts);
  agents.push({ client, pods, ns, sa });
}
await Promise.all(agents.flatMap((a) => [a.pods.synced, a.ns.synced, a.sa.synced]));
process.send({
  synced: Date.now() - t0,
  requests: perSecond.reduce((s, x) => s + (x ?? 0), 0),
  tooMany,
  errorKinds,
});

const timer = setInterval(() => process.send({ relisted: relisted.size }), 250);
process.on('message', async (m) => {
  if (m.cmd === 'mark') {
    mark = Date.now();
    perSecond = [];
    tooMany = errors = 0;
    errorKinds = {};
    relisted.clear();
  } else if (m.cmd === 'report') {
    process.send({
      report: {
        perSecond: perSecond.map((x) => x ?? 0),
        tooMany,
        errors,
        errorKinds,
        relisted: relisted.size,
      },
    });
  } else if (m.cmd === 'stop') {
    clearInterval(timer);
    for (const a of agents) {
      a.pods.stop();
      a.ns.stop();
      a.sa.stop();
    }
    await Promise.all(agents.map((a) => a.client.close()));
    process.exit(0);
  }
});
