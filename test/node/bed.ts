// The node test bed as tests see it (test/node/up made it): kubectl and helm against the real cluster,
// commands inside the node's namespaces, and container logs read from the kubelet's log directory
// (the API server cannot reach the kubelet's port from loopback, so `kubectl logs` is not used).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type Options } from 'execa';
import { cacheDir, REPO_ROOT, testEnv } from '../env/index.js';
import { eventually } from '../integration/chart/helpers.js';

export const NODE_NAME = 'imdsgate-node';
export const NODE_IP = '169.254.100.1';
export const STS_URL = 'http://169.254.240.10';
export const CLIENT_IMAGE = 'localhost/imdsgate-client:1';
export const CHART = join(REPO_ROOT, 'charts/imdsgate');
/** AEMM's instance profile role: what a pod must never see. */
export const NODE_ROLE = 'baskinc-role';

export interface NodeBed {
  run: string;
  holder: number;
  podLogs: string;
  /** The CNI plugin the bed was brought up with (IMDSGATE_NODE_CNI; test/node/lib.sh). */
  cni: 'bridge' | 'ptp';
}

/** The bed's recorded state (test/node/up writes it as shell assignments). */
export function nodeBed(): NodeBed {
  const file = join(cacheDir(), 'node-state.env');
  if (!existsSync(file))
    throw new Error(`node test bed is not up (${file} missing): run \`bash test/node/up\``);
  const vars = new Map<string, string>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) vars.set(m[1]!, m[2]!.replace(/\\(.)/g, '$1'));
  }
  const run = vars.get('RUN') ?? '';
  const cni = vars.get('CNI') === 'ptp' ? 'ptp' : 'bridge';
  return { run, holder: Number(vars.get('HOLDER')), podLogs: join(run, 'pod-logs'), cni };
}

const kubeEnv = () => ({
  KUBECONFIG: testEnv().kube.adminKubeconfig,
  HELM_CACHE_HOME: '/tmp/imdsgate-helm-cache',
});

/** kubectl (built with the test env) as the cluster admin. Throws with stderr on failure. */
export async function kubectl(args: string[], opts: Options = {}): Promise<string> {
  const r = await execa(join(testEnv().binDir, 'kubectl'), args, { env: kubeEnv(), ...opts });
  return String(r.stdout);
}

/** kubectl apply of one or more objects given as JSON. */
export async function apply(...objects: object[]): Promise<void> {
  await kubectl(['apply', '-f', '-'], { input: objects.map((o) => JSON.stringify(o)).join('\n') });
}

/** helm as a user runs it; never throws, returns exit code and output. */
export async function helm(args: string[]): Promise<{ code: number; out: string }> {
  const r = await execa(testEnv().bins.helm, args, { env: kubeEnv(), reject: false, all: true });
  return { code: r.exitCode ?? -1, out: String(r.all) };
}

/** A command inside the node's network and mount namespace (where kubelet and containerd run). */
export async function inNode(cmd: string, args: string[], opts: Options = {}): Promise<string> {
  const r = await execa('nsenter', ['-t', String(nodeBed().holder), '-m', '-n', cmd, ...args], opts);
  return String(r.stdout);
}

/** The node's netfilter, both backends, as one text. */
export async function nodeRules(): Promise<string> {
  const parts = await Promise.all(
    ['iptables-nft-save', 'iptables-legacy-save'].map((c) =>
      inNode(c, [], { reject: false }).catch(() => ''),
    ),
  );
  return parts.join('\n');
}

/** Every line a pod's containers wrote so far (CRI log format stripped), from the kubelet's log dir. */
export function podLog(namespace: string, name: string): string[] {
  const dir = nodeBed().podLogs;
  const lines: string[] = [];
  for (const d of readdirSync(dir).filter((n) => n.startsWith(`${namespace}_${name}_`))) {
    for (const c of readdirSync(join(dir, d))) {
      for (const f of readdirSync(join(dir, d, c)).sort()) {
        for (const l of readFileSync(join(dir, d, c, f), 'utf8').split('\n')) {
          // "<RFC3339 time> <stdout|stderr> <F|P> <text>"
          const m = /^\S+ (?:stdout|stderr) [FP] (.*)$/.exec(l);
          if (m) lines.push(m[1]!);
        }
      }
    }
  }
  return lines;
}

/** Polls fn until it returns something other than undefined; fails after timeoutMs naming `what`. */
export const until = <T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> =>
  eventually(fn, timeoutMs, what);

export interface PodState {
  phase: string;
  ip?: string;
  ready: boolean;
  uid: string;
}

export async function podState(namespace: string, name: string): Promise<PodState | undefined> {
  const out = await kubectl(['get', 'pod', '-n', namespace, name, '-o', 'json'], { reject: false });
  if (!out) return undefined;
  const p = JSON.parse(out) as {
    metadata: { uid: string };
    status: { phase: string; podIP?: string; conditions?: { type: string; status: string }[] };
  };
  const ready = p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  return { phase: p.status.phase, ip: p.status.podIP, ready, uid: p.metadata.uid };
}

/** PIDs of processes in the node's network namespace whose command line matches `pattern`. */
export async function nodeProcesses(pattern: RegExp): Promise<number[]> {
  const { readlinkSync } = await import('node:fs');
  const netns = readlinkSync(`/proc/${nodeBed().holder}/ns/net`);
  const out: number[] = [];
  for (const d of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      if (readlinkSync(`/proc/${d}/ns/net`) !== netns) continue;
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (pattern.test(cmd)) out.push(Number(d));
    } catch {
      // the process exited meanwhile
    }
  }
  return out;
}

/** The node's own AccessKeyId, read from the cloud inside the node: no pod may ever see it. */
export async function nodeAccessKeyId(): Promise<string> {
  const md = 'http://169.254.169.254/latest';
  const tok = await inNode('curl', [
    '-fsS',
    '-m',
    '2',
    '-X',
    'PUT',
    '-H',
    'x-aws-ec2-metadata-token-ttl-seconds: 60',
    `${md}/api/token`,
  ]);
  const c = await inNode('curl', [
    '-fsS',
    '-m',
    '2',
    '-H',
    `x-aws-ec2-metadata-token: ${tok}`,
    `${md}/meta-data/iam/security-credentials/${NODE_ROLE}`,
  ]);
  return (JSON.parse(c) as { AccessKeyId: string }).AccessKeyId;
}

/**
 * A namespace made afresh: one left by an earlier run (perhaps still Terminating) is deleted and waited
 * for first, or its finalization would delete this run's pods under the test's feet.
 */
export async function freshNamespace(name: string, annotations: Record<string, string> = {}): Promise<void> {
  await kubectl(['delete', 'namespace', name, '--ignore-not-found', '--wait=true', '--timeout=120s']);
  await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, annotations } });
  await until(`${name}/default service account`, 30_000, async () =>
    (await kubectl(['get', 'sa', '-n', name, 'default'], { reject: false })) ? true : undefined,
  );
}
