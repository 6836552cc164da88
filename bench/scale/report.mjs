// RESULTS.md for bench/scale/run.mjs: the growth table (agent process) and the fleet tables (N agents).
const ratio = (a, b) => (a === undefined || b === undefined || b === 0 ? 'n/a' : `${(a / b).toFixed(2)}×`);
const mb = (x) => (x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(1));

function growthSection(o) {
  const steps = [];
  for (const g of o.growth)
    if (!steps.some((s) => s.dim === g.dim && s.pods === g.pods && s.ns === g.ns && s.sa === g.sa))
      steps.push({ dim: g.dim, pods: g.pods, ns: g.ns, sa: g.sa });
  if (steps.length === 0) return ['(growth steps skipped: BENCH_ONLY=fleet)', ''];
  const at = (s, design) =>
    o.growth.find((x) => x.design === design && x.pods === s.pods && x.ns === s.ns && x.sa === s.sa) ?? {};
  const label = (s) => `${s.pods} / ${s.ns} / ${s.sa}`;
  const lastOf = (dim) => steps.findLast((s) => s.dim === dim);
  const empty = steps[0];
  const beforeSa = steps.findLast((s) => s.dim !== 'sa');
  const saSteps = steps.filter((s) => s.dim === 'sa');
  const nsSteps = steps.filter((s) => s.dim === 'ns');
  const per10k = (s, d, k) =>
    (((at(s, d)[k] - at(beforeSa, d)[k]) * 10_000) / (s.sa - beforeSa.sa)).toFixed(1);
  const pods = lastOf('pods');
  const podDelta = (d, k) => mb(at(pods, d)[k] - at(empty, d)[k]);
  return [
    '| cluster: pods elsewhere / namespaces / service accounts | previous: ready ms | previous: RSS at Ready / +10 s MB | new: ready ms | new: RSS at Ready / +10 s MB | RSS at Ready, previous / new |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...steps.map((s) => {
      const [p, n] = [at(s, 'previous'), at(s, 'new')];
      return `| ${label(s)} | ${p.readyMs} | ${p.rssReadyMb} / ${p.rssSettledMb} | ${n.readyMs} | ${n.rssReadyMb} / ${n.rssSettledMb} | ${ratio(p.rssReadyMb, n.rssReadyMb)} |`;
    }),
    '',
    `- Pods of other nodes (0 → ${pods?.pods ?? 0}): RSS at Ready changed by previous ${podDelta('previous', 'rssReadyMb')} MB, new ${podDelta('new', 'rssReadyMb')} MB (10 s later: ${podDelta('previous', 'rssSettledMb')} / ${podDelta('new', 'rssSettledMb')} MB).`,
    ...(nsSteps.length > 0
      ? [
          `- Namespaces (1 → ${nsSteps.at(-1).ns}): RSS at Ready changed by previous ${mb(at(nsSteps.at(-1), 'previous').rssReadyMb - at(pods ?? empty, 'previous').rssReadyMb)} MB, new ${mb(at(nsSteps.at(-1), 'new').rssReadyMb - at(pods ?? empty, 'new').rssReadyMb)} MB.`,
        ]
      : []),
    ...saSteps.map(
      (s) =>
        `- Memory per 10k service accounts at ${s.sa} (minus the step before any were added, scaled): at Ready previous ${per10k(s, 'previous', 'rssReadyMb')} MB, new ${per10k(s, 'new', 'rssReadyMb')} MB; 10 s later previous ${per10k(s, 'previous', 'rssSettledMb')} MB, new ${per10k(s, 'new', 'rssSettledMb')} MB.`,
    ),
    '',
  ];
}

function fleetSection(o) {
  const Ns = Object.keys(o.fleet.new ?? {}).map(Number);
  if (Ns.length === 0) return ['(fleet skipped: BENCH_ONLY=growth)', ''];
  const out = [];
  for (const N of Ns) {
    // A fleet that never resynced (or whose simulators stopped answering) has no resync counts: n/a, not 0.
    const clean = (r = {}) =>
      r.resyncMs === undefined && !r.resyncRequests
        ? {
            ...r,
            peakRequestsPerSecond: undefined,
            resyncRequests: undefined,
            resync429: undefined,
            resyncErrors: undefined,
            resyncErrorKinds: undefined,
          }
        : r;
    const [p, n] = [clean(o.fleet.previous?.[N]), clean(o.fleet.new?.[N])];
    const row = (label, key) =>
      `| ${label} | ${p[key] ?? 'n/a'} | ${n[key] ?? 'n/a'} | ${ratio(p[key], n[key])} |`;
    const kinds = (k) =>
      k === undefined
        ? 'n/a'
        : Object.entries(k)
            .map(([x, v]) => `${x} ${v}`)
            .join(', ') || 'none';
    const kindsRow = (label, key) => `| ${label} | ${kinds(p[key])} | ${kinds(n[key])} | |`;
    out.push(
      `### N = ${N}`,
      '',
      '| figure | previous | new | previous / new |',
      '| --- | ---: | ---: | ---: |',
      row('first sync of all agents, ms', 'firstSyncMs'),
      row('requests during the first sync', 'firstSyncRequests'),
      row('429 answers during the first sync', 'firstSync429'),
      kindsRow('other failed requests during the first sync, by kind', 'firstSyncErrors'),
      row('API server CPU for the first sync, s', 'apiCpuFirstSyncS'),
      row('API server CPU for the first sync per agent, ms', 'apiCpuFirstSyncPerAgentMs'),
      row('API server RSS before the agents, MB', 'apiRssBaseMb'),
      row('API server RSS with the agents synced (+10 s), MB', 'apiRssWithAgentsMb'),
      row('API server RSS growth per agent, KB', 'apiRssPerAgentKb'),
      row('API server Go heap in use with the agents synced, after a forced GC, MB', 'apiHeapWithAgentsMb'),
      row('API server live heap per agent (after a forced GC), KB', 'apiHeapPerAgentKb'),
      row('resync: from the kill until every agent relisted all 3 views, ms', 'resyncFromKillMs'),
      row('resync: from the new API server process start, ms', 'resyncMs'),
      row('  of which the new API server took to answer /readyz, ms', 'apiReadyMs'),
      row('API server CPU, restart + resync, s (includes its own start-up)', 'apiCpuResyncS'),
      row('peak requests per second during resync', 'peakRequestsPerSecond'),
      row('requests during resync', 'resyncRequests'),
      row('429 answers during resync', 'resync429'),
      row('failed requests during resync (refused while down, other errors)', 'resyncErrors'),
      kindsRow('  by kind', 'resyncErrorKinds'),
      '',
      ...[
        ['previous', p],
        ['new', n],
      ].flatMap(([d, r]) => [
        ...(r.error ? [`- ${d}: the measurement failed: ${r.error}`] : []),
        ...(r.apiExits?.length ? [`- ${d}: the API server exited: ${r.apiExits.join('; ')}`] : []),
      ]),
      '',
    );
  }
  return out;
}

export function report(o) {
  const s = o.size;
  return [
    '# Scale benchmark results',
    '',
    `Generated by \`node bench/scale/run.mjs\` on ${o.generatedAt ?? new Date().toISOString()} (wall time ${Math.round(o.wallSeconds / 60)} min).`,
    `Machine: ${o.machine}, 24 GiB RAM, 2 cores shared with other sessions (load average at the end: ${o.loadavg.join(' ')}).`,
    `Private etcd + kube-apiserver (the test environment's pinned v1.34 binaries, default flags, APF on).`,
    `"previous" is the agent built from ${o.base.slice(0, 12)} (before issue 14); "new" is this tree; same run.`,
    `Cluster at full size: ${s.ns} namespaces (a tenth with allowed-roles), ${s.sa} service accounts (a tenth with`,
    `an IRSA role, each with a 300-byte last-applied annotation), ${s.pods} pods over ${s.nodes} other nodes,`,
    `${s.ownPods} pods on the measured agent's node.`,
    '',
    '## One agent as the cluster grows (built CLI, shipped node flags, --log-level=warn)',
    '',
    ...growthSection(o),
    '## N simulated agents against one API server',
    '',
    `Cluster while the fleet runs: ${Math.min(s.fleetNs, s.ns)} namespaces, ${s.pods} pods over ${s.nodes} other`,
    'nodes, no service accounts but one (they are added afterwards; see run.mjs for why).',
    "Each simulated agent is the agent's own kube client, pod watcher and namespace/service-account views",
    `(bench/scale/sim.mjs, ${o.perProcess} per Node process) with its own connections, on its own node name,`,
    'authenticated as one service account (not exempt from API Priority and Fairness: FlowSchema',
    'service-accounts, priority level workload-low). "Restart": the API server killed (SIGKILL; its graceful',
    'stop waits 60 s for open watches) and a new one started at once; the resync time runs until every',
    'agent has relisted all three views. Requests are counted client-side.',
    '',
    ...fleetSection(o),
  ].join('\n');
}
