// Child process of bench/identity/run.mjs: the identity part of the agent alone (pod watch, views,
// decision, credential cache over moto), so its RSS is measured without the test driver's own heap.
// Talks to the parent over IPC. Loads the compiled sources from IMDSGATE_BENCH_DIST.
import { performance } from 'node:perf_hooks';
import { setTimeout } from 'node:timers';

const dist = process.env.IMDSGATE_BENCH_DIST;
const t0 = performance.now();
const { loadConfig } = await import(`${dist}/config.js`);
const { createMetrics } = await import(`${dist}/metrics.js`);
const { createLogger } = await import(`${dist}/logger.js`);
const { createAssumeRoleIssuer } = await import(`${dist}/credentials/sts.js`);
const { createCredentialCache } = await import(`${dist}/credentials/cache.js`);
const { startKubeIdentity } = await import(`${dist}/kube/identity.js`);
// Where the memory goes (MB after GC): modules loaded, views synced, start-up prefetch done.
const mb = (b) => Math.round(b / 1048576);
const snapshot = () => {
  globalThis.gc?.();
  const m = process.memoryUsage();
  return { rss: mb(m.rss), heapTotal: mb(m.heapTotal), heapUsed: mb(m.heapUsed), external: mb(m.external) };
};
const stages = { imported: snapshot() };

// The identity part only: no interception rules, so no --host-ip either.
const cfg = loadConfig(JSON.parse(process.env.IMDSGATE_BENCH_ARGS), { IMDSGATE_MANAGE_RULES: 'false' });
const metrics = createMetrics();
const logger = createLogger('error');
const issuer = createAssumeRoleIssuer({
  region: 'us-east-1',
  endpoint: process.env.IMDSGATE_BENCH_STS,
  nodeCredentials: async () => ({ accessKeyId: 'AKIDNODE', secretAccessKey: 's' }),
  durationSeconds: 3600,
  sessionTags: false,
  clock: Date.now,
  metrics,
  logger,
});
const cache = createCredentialCache(issuer, { clock: Date.now, metrics, logger });
const identity = await startKubeIdentity(cfg, { logger, metrics, clock: Date.now, credentialIssuer: cache });
await identity.synced;
const readyMs = performance.now() - t0;
stages.synced = snapshot();
// Let the start-up prefetch of the node's pods finish before measuring memory.
await new Promise((r) => setTimeout(r, 2000));
stages.settled = snapshot();
globalThis.gc?.();
process.send({
  type: 'ready',
  readyMs,
  rss: process.memoryUsage().rss,
  stages,
  pods: await metrics.podsKnown.get(),
});

process.on('message', async (m) => {
  if (m.type === 'rss') {
    globalThis.gc?.();
    process.send({ type: 'rss', rss: process.memoryUsage().rss });
  } else if (m.type === 'creds') {
    // The pod asks right away (or after m.delayMs): lookup (may wait for the watch) + decision + credentials.
    const start = performance.now();
    try {
      const r = await identity.podLookup.byIp(m.ip);
      // Until the pod is known: the watch event's delay (immediate requests wait for it).
      const lookupMs = performance.now() - start;
      if (r.kind !== 'found') throw new Error(`lookup ${r.kind}`);
      const d = await identity.roleResolver.resolve(r.pod);
      if (!d.allow) throw new Error(`deny ${d.reason}`);
      await cache.issue({ pod: r.pod, roleArn: d.roleArn });
      process.send({ type: 'creds', ms: performance.now() - start, lookupMs });
    } catch (err) {
      process.send({ type: 'creds', error: String(err) });
    }
  } else if (m.type === 'sts') {
    // Baseline: the same request without the cache (what a pod would wait without prefetch).
    const start = performance.now();
    const r = await identity.podLookup.byIp(m.ip);
    await issuer.issue({ pod: r.pod, roleArn: 'arn:aws:iam::123456789012:role/baseline' });
    process.send({ type: 'sts', ms: performance.now() - start });
  } else if (m.type === 'stop') {
    identity.stop();
    cache.close();
    process.exit(0);
  }
});
