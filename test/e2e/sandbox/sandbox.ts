// The whole sandbox: topology (topology.ts), amazon-ec2-metadata-mock on 169.254.169.254 in the cloud
// namespace, the loopback relay to kube-apiserver and moto (relay.mjs), the pods registered in the real
// kube-apiserver, and the built agent (`node dist/main.js serve`) in the node namespace with real rules.
// destroy() undoes everything; the exit hooks in netns.ts cover a crash or Ctrl-C.
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CLI, ROOT, requireBuild } from './cli.js';
import { testEnv, type TestEnv } from '../../env/index.js';
import { startHostRelay } from './host-relay.js';
import { kubeRegistry, type KubeRegistry } from './kube.js';
import { inNetns, reapStale } from './netns.js';
import { spawnInNetns, waitFor, type NetnsProcess } from './processes.js';
import { createTopology, METADATA_IP, NODE_IP, NODE_IP6, type Topology } from './topology.js';

export const ACCOUNT = '123456789012';
export const BASE_ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/`;
let sandboxes = 0;

export interface PodSpec {
  readonly name: string;
  /** Logical namespace; the registered one gets a per-run suffix (see Sandbox.kubeNamespace). */
  readonly namespace: string;
  /** Role name; on the service account as a full ARN (IRSA) or on the pod (kube2iam). */
  readonly role?: string;
  readonly roleVia?: 'service-account' | 'pod-annotation';
}

export interface SandboxOptions {
  readonly pods: readonly PodSpec[];
  /** Logical namespace → the role names its iam.amazonaws.com/allowed-roles annotation allows. */
  readonly allowedRoles: Readonly<Record<string, readonly string[]>>;
  readonly backend?: 'auto' | 'nft' | 'legacy';
  readonly agentArgs?: readonly string[];
  /** kube: the real API server (default once the build has it); file: --identity-file. */
  readonly identity?: 'kube' | 'file';
  /** Dual-stack pods and --ipv6 rules (ip6tables DNAT of [fd00:ec2::254]). */
  readonly ipv6?: boolean;
  /**
   * An IPv6-only node as the chart sees it on an IPv6 EKS cluster: status.hostIP(s) is only the node's IPv6
   * address, so the agent gets that alone (no IPv4 host address, no --ipv6); dual-stack pods.
   */
  readonly ipv6Only?: boolean;
}

export interface SandboxPod extends PodSpec {
  readonly ip: string;
  readonly ip6?: string | undefined;
  readonly netns: string;
  readonly kubeNamespace: string;
}

export interface Sandbox {
  readonly topology: Topology;
  readonly pods: readonly SandboxPod[];
  readonly env: TestEnv;
  readonly logDir: string;
  readonly identity: 'kube' | 'file';
  readonly nodeName: string;
  agent(): NetnsProcess | undefined;
  startAgent(extraArgs?: readonly string[]): Promise<NetnsProcess>;
  /** `curl` from inside a pod namespace. */
  curl(pod: SandboxPod, path: string, args?: readonly string[]): Promise<CurlResult>;
  metrics(): Promise<string>;
  destroy(): Promise<void>;
}

export async function createSandbox(opts: SandboxOptions): Promise<Sandbox> {
  requireBuild();
  await reapStale();
  const env = testEnv();
  const logDir = mkdtempSync(join(tmpdir(), 'imdsgate-sandbox-'));
  // Unique per sandbox: a deleted namespace stays Terminating (no controller manager), and the node name
  // keeps the agent's node-scoped watch to this sandbox's pods on a shared API server.
  const run = `${process.pid.toString(36)}s${sandboxes++}`;
  const nodeName = `sandbox-${run}`;
  const undo: (() => Promise<unknown>)[] = [];
  const destroy = async () => {
    for (const fn of undo.reverse()) await fn().catch(() => undefined);
    undo.length = 0;
  };
  try {
    const backend = opts.backend === 'legacy' ? 'legacy' : 'nft';
    const topology = await createTopology(
      opts.pods.length,
      backend,
      (opts.ipv6 ?? false) || (opts.ipv6Only ?? false),
    );
    undo.push(() => topology.destroy());
    const aemm = await startAemm(topology.cloud, env, logDir);
    undo.push(() => aemm.stop());
    const hostRelay = await startHostRelay([env.kube.server, env.sts.endpoint]);
    undo.push(() => hostRelay.close());
    const relay = await startNetnsRelay(topology.node, hostRelay.mappings, join(logDir, 'relay-node.log'));
    undo.push(() => relay.stop());
    // Pods reach moto too (as a pod reaches the regional STS endpoint), so SDKs can prove whose role
    // they hold with GetCallerIdentity. Never the API server: that is the agent's business.
    for (const [i, p] of topology.pods.entries()) {
      const r = await startNetnsRelay(p.netns, [hostRelay.mappings[1]!], join(logDir, `relay-pod${i}.log`));
      undo.push(() => r.stop());
    }

    const pods = opts.pods.map((p, i) => ({
      ...p,
      ip: topology.pods[i]!.ip,
      ip6: topology.pods[i]!.ip6,
      netns: topology.pods[i]!.netns,
      kubeNamespace: `${p.namespace}-${run}`,
    }));
    const registry = kubeRegistry();
    undo.push(() => registry.cleanup());
    await register(registry, pods, opts.allowedRoles, nodeName);
    const identity = opts.identity ?? (hasKubeIdentity() ? 'kube' : 'file');
    const identityArgs =
      identity === 'kube'
        ? ['--kubeconfig', env.kube.adminKubeconfig, '--node-name', nodeName]
        : ['--identity-file', writeIdentityFile(logDir, pods, opts.allowedRoles)];

    let agent: NetnsProcess | undefined;
    undo.push(async () => agent?.stop());
    const startAgent = async (extra: readonly string[] = []) => {
      if (agent !== undefined) await agent.stop();
      const args = [...agentArgs(env, opts), ...identityArgs, ...(opts.agentArgs ?? []), ...extra];
      agent = spawnInNetns(
        topology.node,
        process.execPath,
        [CLI, 'serve', ...args],
        join(logDir, 'agent.log'),
      );
      const started = agent;
      await waitFor(
        'imdsgate',
        started,
        async () => (await nodeCurl(topology.node, '/readyz')).status === 200,
        60_000,
      );
      // /readyz can turn 200 before the guard has installed the rules (serve installs them after
      // listening); until then pods would still reach the real service, so wait for the rules too.
      if (!args.includes('--manage-rules=false')) {
        await waitFor('interception rules', started, async () =>
          /^imdsgate_rules_installed\{family="ipv4"\} 1$/m.test(
            (await nodeCurl(topology.node, '/metrics')).body,
          ),
        );
      }
      return started;
    };
    return {
      topology,
      pods,
      env,
      logDir,
      identity,
      nodeName,
      agent: () => agent,
      startAgent,
      curl: (pod, path, args = []) => curlIn(pod.netns, `http://${METADATA_IP}${path}`, args),
      metrics: async () => (await nodeCurl(topology.node, '/metrics')).body,
      destroy,
    };
  } catch (err) {
    await destroy();
    throw err;
  }
}

function agentArgs(env: TestEnv, opts: SandboxOptions): string[] {
  return [
    // [::] is dual-stack in Node: IPv4 pods are DNATed to 169.254.100.1:8181 and reach it too.
    ...(opts.ipv6Only
      ? [`--listen=[${NODE_IP6}]:8181`, `--host-ip=${NODE_IP6}`, `--host-ips=${NODE_IP6}`]
      : opts.ipv6
        ? ['--listen=[::]:8181', '--ipv6', `--host-ipv6=${NODE_IP6}`, `--host-ip=${NODE_IP}`]
        : ['--listen=0.0.0.0:8181', `--host-ip=${NODE_IP}`]),
    '--metrics-listen=127.0.0.1:9181',
    '--interfaces=veth+',
    `--iptables-backend=${opts.backend ?? 'auto'}`,
    `--upstream=http://${METADATA_IP}`,
    `--sts-endpoint=${env.sts.endpoint}`,
    '--region=us-east-1',
    `--base-role-arn=${BASE_ROLE_ARN}`,
    '--log-level=info',
  ];
}

const hasKubeIdentity = () => existsSync(join(ROOT, 'dist/kube/identity.js'));

async function startAemm(cloud: string, env: TestEnv, logDir: string): Promise<NetnsProcess> {
  const aemm = spawnInNetns(cloud, env.bins.aemm, ['-n', METADATA_IP, '-p', '80'], join(logDir, 'aemm.log'));
  await waitFor('ec2-metadata-mock', aemm, async () => {
    const r = await curlIn(cloud, `http://${METADATA_IP}/latest/meta-data/instance-id`);
    return r.status === 200;
  });
  return aemm;
}

async function startNetnsRelay(ns: string, mappings: readonly string[], log: string): Promise<NetnsProcess> {
  const script = join(ROOT, 'test/e2e/sandbox/relay.mjs');
  const relay = spawnInNetns(ns, process.execPath, [script, ...mappings], log);
  await waitFor('loopback relay', relay, async () => relay.log().includes('relay ready'));
  return relay;
}

async function register(
  registry: KubeRegistry,
  pods: readonly SandboxPod[],
  allowed: SandboxOptions['allowedRoles'],
  nodeName: string,
): Promise<void> {
  for (const ns of new Set(pods.map((p) => p.namespace))) {
    const kubeNs = pods.find((p) => p.namespace === ns)!.kubeNamespace;
    const roles = allowed[ns];
    await registry.ensureNamespace(
      kubeNs,
      roles === undefined ? {} : { 'iam.amazonaws.com/allowed-roles': JSON.stringify(roles) },
    );
  }
  for (const p of pods) {
    const viaSa = p.role !== undefined && (p.roleVia ?? 'service-account') === 'service-account';
    await registry.ensureServiceAccount(
      p.kubeNamespace,
      p.name,
      viaSa ? { 'eks.amazonaws.com/role-arn': `${BASE_ROLE_ARN}${p.role}` } : {},
    );
    const podAnnotations: Record<string, string> =
      p.role !== undefined && !viaSa ? { 'iam.amazonaws.com/role': p.role } : {};
    await registry.createPod(
      {
        namespace: p.kubeNamespace,
        name: p.name,
        serviceAccount: p.name,
        ip: p.ip,
        ip6: p.ip6,
        podAnnotations,
      },
      nodeName,
    );
  }
}

/** --identity-file stand-in for the watch: the namespace policy applied here, as the agent would. */
function writeIdentityFile(
  dir: string,
  pods: readonly SandboxPod[],
  allowed: SandboxOptions['allowedRoles'],
) {
  const path = join(dir, 'identity.yaml');
  const entries = pods.map((p) => {
    const ok = p.role !== undefined && (allowed[p.namespace] ?? [p.role]).includes(p.role);
    return {
      ip: p.ip,
      namespace: p.kubeNamespace,
      name: p.name,
      serviceAccount: p.name,
      ...(ok ? { roleArn: `${BASE_ROLE_ARN}${p.role}` } : {}),
    };
  });
  writeFileSync(path, stringify({ pods: entries }));
  return path;
}

export interface CurlResult {
  /** 0 when no HTTP answer came (refused, timeout). */
  readonly status: number;
  readonly body: string;
  readonly stderr: string;
}

/** curl inside ns. */
export async function curlIn(ns: string, url: string, args: readonly string[] = []): Promise<CurlResult> {
  const r = await inNetns(ns, 'curl', ['-sS', '-m', '5', '-w', '\n%{http_code}', ...args, url]);
  const i = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(i + 1)) || 0, body: r.stdout.slice(0, i), stderr: r.stderr };
}

const nodeCurl = (node: string, path: string) => curlIn(node, `http://127.0.0.1:9181${path}`);
