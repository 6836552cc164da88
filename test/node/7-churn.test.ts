// Continuous churn through the real IPAM (test/node/churn.ts): host-local narrowed to six addresses, pods
// of four roles (two namespaces, two service accounts each) created and deleted one after another, each
// asking from the first instant of its container. Every answer is traced to its role (the listing, and
// the AccessKeyId through STS GetCallerIdentity): none may name another pod's role, and at least 50
// addresses must have gone from one role to another. Pods leave by a sandbox crash (the kubelet gives
// the pod a new sandbox and address while the API still names it on the old one): on the bridge bed
// `auto` closes that with host-local's lease files, on the ptp bed with the host routes (docs/identity.md).
//
// bench/node/churn.sh runs arms of it: IMDSGATE_CHURN_BINDING=off (the agent at --sandbox-binding=off,
// measured instead of asserted: it shows the check can fail), IMDSGATE_CHURN_RETIRE=delete (pods leave
// through the API), IMDSGATE_CHURN_REUSES=<n>, and IMDSGATE_CHURN_REPORT=<file> (the figures and every
// pod's log as JSON).
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../env/index.js';
import { apply, freshNamespace, inNode, kubectl, nodeBed, until } from './bed.js';
import { churn, keyRoles, parseChurnLog, type ChurnPod, type ChurnRole } from './churn.js';
import { roleArn } from './pods.js';
import { installChart, METRICS_URL } from './release.js';

const BINDING = process.env.IMDSGATE_CHURN_BINDING ?? 'auto';
const NAMESPACES = ['bed-churn-a', 'bed-churn-b'];
const ROLES: ChurnRole[] = NAMESPACES.flatMap((ns) =>
  ['one', 'two'].map((sa) => ({ namespace: ns, serviceAccount: sa, role: `${ns.slice(4)}-${sa}` })),
);
/** Six addresses of the bed's /27 (test/node/lib.sh POD_SUBNET): host-local hands them round and round. */
const RANGE = ['169.254.64.24', '169.254.64.29'] as const;
const IN_RANGE = /^169\.254\.64\.(2[4-9])$/;
const REUSES = Number(process.env.IMDSGATE_CHURN_REUSES ?? 50);
/**
 * Pods leave by a sandbox crash unless told otherwise: the case that only a per-pod signal closes (the
 * lease on bridge, the host route on ptp), which auto must close on both beds.
 */
const RETIRE = (process.env.IMDSGATE_CHURN_RETIRE ?? 'crash') as 'crash' | 'delete';
/** Where the guarantee holds (docs/identity.md): auto, with a per-pod signal on both beds. */
const GUARANTEED = () => BINDING === 'auto';

/** host-local's reservations: /var/lib/cni/networks/<network> in the node's mount namespace (test/node/up). */
const IPAM_DIR = () => join(nodeBed().run, 'cni-cache/networks/imdsgate-bed');
const runtime = (...args: string[]) => execa('bash', [join(REPO_ROOT, 'test/node/runtime.sh'), ...args]);

beforeAll(async () => {
  await installChart(['--set', `config.sandboxBinding=${BINDING}`]);
  for (const ns of NAMESPACES) {
    await freshNamespace(ns);
    await apply(
      ...ROLES.filter((r) => r.namespace === ns).map((r) => ({
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: {
          name: r.serviceAccount,
          namespace: ns,
          annotations: { 'eks.amazonaws.com/role-arn': roleArn(r.role) },
        },
      })),
    );
  }
  await runtime('pod-range', ...RANGE);
  // Earlier files' pods may still hold addresses in the range: wait until host-local has none reserved.
  await until('pod range free', 90_000, async () => {
    const held = existsSync(IPAM_DIR()) ? readdirSync(IPAM_DIR()) : [];
    return held.some((f) => IN_RANGE.test(f)) ? undefined : true;
  });
});

describe(`continuous churn through the real IPAM (--sandbox-binding=${BINDING}, pods leave by ${RETIRE})`, () => {
  it('no answer ever names a retiring pod\u2019s role', { timeout: 420_000 }, async () => {
    const before = await metrics();
    const started = Date.now();
    const { pods, crossRoleReuses } = await churn(
      {
        roles: ROLES,
        alive: RETIRE === 'crash' ? 3 : 4,
        reuses: REUSES + 5,
        maxPods: 160,
        maxMs: 240_000,
        retire: RETIRE,
        ipamDir: IPAM_DIR(),
      },
      `r${started}`,
    );
    const after = await metrics();
    const keys = await keyRoles(pods);
    const r = { crossRoleReuses, ...tally(pods, keys) };
    const figures = {
      cni: nodeBed().cni,
      binding: BINDING,
      retire: RETIRE,
      seconds: Math.round((Date.now() - started) / 1000),
      ...r,
      agent: diff(before, after),
    };
    console.log(`churn: ${JSON.stringify(figures)}`);
    if (process.env.IMDSGATE_CHURN_REPORT)
      writeFileSync(
        process.env.IMDSGATE_CHURN_REPORT,
        JSON.stringify({ ...figures, podLogs: pods }, null, 1),
      );
    expect(
      pods.every((p) => p.ips.length > 0 && p.ips.every((ip) => IN_RANGE.test(ip))),
      'every pod in the range',
    ).toBe(true);
    expect(r.crossRoleReuses).toBeGreaterThanOrEqual(REUSES);
    expect(r.unknownKeys, 'every AccessKeyId traced with STS').toEqual([]);
    // The other arms (bench/node/churn.sh) are measurements: they report what the same checks find.
    if (!GUARANTEED()) return;
    expect(r.wrong, 'answers naming another pod\u2019s role').toEqual([]);
    expect(r.served).toBeGreaterThan(pods.length); // every pod was served, most of them many times
    expect(r.podsServed).toBe(pods.length);
  });
});

/** Counts per run; `wrong` lists answers whose listed role or traced key is not the pod's own. */
function tally(pods: readonly ChurnPod[], keys: ReadonlyMap<string, string>) {
  const wrong: string[] = [];
  const unknownKeys = new Set<string>();
  const firsts: number[] = [];
  let tries = 0;
  let served = 0;
  let refused = 0;
  let timedOut = 0;
  let podsServed = 0;
  let wrongFromPrevious = 0;
  for (const p of pods) {
    const { start, tries: ts } = parseChurnLog(p.lines);
    tries += ts.length;
    for (const t of ts) {
      if (t.listing === '200' && t.creds === '200') served++;
      else if (t.listing === '000' || t.creds === '000') timedOut++;
      else refused++;
      const traced = t.creds === '200' ? keys.get(t.key) : undefined;
      if (t.creds === '200' && traced === undefined) unknownKeys.add(t.key);
      const named = t.listing === '200' ? t.role : undefined;
      const got = [named, traced].find((x) => x !== undefined && x !== p.spec.role);
      if (got !== undefined) {
        if (got === p.previous) wrongFromPrevious++;
        wrong.push(
          `${p.name} (${p.spec.role}) on ${p.ip}, previous ${p.previous}: ${got} at +${t.sent - (start ?? 0)} ms`,
        );
      }
    }
    const first = ts.find((t) => t.creds === '200' && keys.get(t.key) === p.spec.role);
    if (first !== undefined && start !== undefined) {
      podsServed++;
      firsts.push(first.done - start);
    }
  }
  firsts.sort((a, b) => a - b);
  const q = (f: number) => firsts[Math.min(firsts.length - 1, Math.floor(f * firsts.length))] ?? -1;
  return {
    pods: pods.length,
    addresses: new Set(pods.flatMap((p) => p.ips)).size,
    wrongPods: new Set(wrong.map((w) => w.split(' ')[0])).size,
    tries,
    served,
    refused,
    timedOut,
    podsServed,
    wrongFromPrevious,
    firstCredentialMs: { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: q(1) },
    unknownKeys: [...unknownKeys],
    wrong,
  };
}

/** The agent's decision, binding-wait and unknown-pod-wait counters (summed over other labels). */
async function metrics(): Promise<Map<string, number>> {
  const text = await inNode('curl', ['-fsS', '-m', '2', METRICS_URL]);
  const out = new Map<string, number>();
  for (const l of text.split('\n')) {
    const m =
      /^imdsgate_(decisions_total|sandbox_binding_waits_total|unknown_pod_waits_total|requests_total|token_rejections_total)\{([^}]*)\} (\S+)$/.exec(
        l,
      );
    if (!m) continue;
    const labels = [...m[2]!.matchAll(/(outcome|reason|route|status)="([^"]*)"/g)].map((x) => x[2]).join('/');
    const k = `${m[1]!.replace(/_total$/, '')} ${labels}`;
    out.set(k, (out.get(k) ?? 0) + Number(m[3]));
  }
  return out;
}

function diff(a: Map<string, number>, b: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of b) if (v - (a.get(k) ?? 0) > 0) out[k] = v - (a.get(k) ?? 0);
  return out;
}

afterAll(async () => {
  await runtime('pod-range');
  for (const ns of NAMESPACES) await kubectl(['delete', 'namespace', ns, '--wait=false'], { reject: false });
  if (BINDING !== 'auto') await installChart();
});
