// `imdsgate explain --namespace N --pod P`: the role decision for one pod and every input behind it,
// read from the API server with the same rules the agent applies. Exit 0 allow, 1 deny, 2 usage error.
import type { V1Namespace, V1Pod, V1ServiceAccount } from '@kubernetes/client-node';
import { ConfigError, loadConfig } from '../config.js';
import { kubeClientForConfig } from '../kube/client.js';
import { keptAnnotations } from '../pods/index.js';
import type { Config } from '../config.js';
import { explainRole, imdsv1For, type DecisionConfig } from '../roles/decide.js';
import { buildDecisionConfig } from '../roles/decision-config.js';

const USAGE = 'usage: imdsgate explain --namespace N --pod P [--kubeconfig PATH] [agent flags...]';

function take(argv: string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  if (i < 0) return undefined;
  const [, value] = argv.splice(i, 2);
  return value;
}

/** Where explain writes; stdout/stderr by default, a capture in tests. */
export interface Writer {
  write(s: string): unknown;
}

export async function run(
  argv: string[],
  out: Writer = process.stdout,
  err: Writer = process.stderr,
): Promise<number> {
  const rest = [...argv];
  if (rest.includes('--help')) {
    out.write(`${USAGE}\n`);
    return 0;
  }
  const namespace = take(rest, '--namespace');
  const podName = take(rest, '--pod');
  if (namespace === undefined || podName === undefined) {
    err.write(`${USAGE}\n`);
    return 2;
  }
  let cfg;
  try {
    cfg = loadConfig(rest.includes('--node-name') ? rest : [...rest, '--node-name', 'explain'], process.env, {
      command: 'explain',
    });
  } catch (e) {
    err.write(`${e instanceof ConfigError ? e.message : String(e)}\n`);
    return 2;
  }
  const client = kubeClientForConfig(cfg);
  const nsPath = `/api/v1/namespaces/${encodeURIComponent(namespace)}`;
  const read = <T>(path: string) => client.request<T>('GET', path);
  let pod: V1Pod, ns: V1Namespace | undefined, sa: V1ServiceAccount | undefined, saName: string;
  try {
    pod = await read<V1Pod>(`${nsPath}/pods/${encodeURIComponent(podName)}`);
    saName = pod.spec?.serviceAccountName || 'default';
    [ns, sa] = await Promise.all([
      read<V1Namespace>(nsPath).catch(() => undefined),
      read<V1ServiceAccount>(`${nsPath}/serviceaccounts/${encodeURIComponent(saName)}`).catch(
        () => undefined,
      ),
    ]);
  } finally {
    await client.close();
  }
  const notes: string[] = [];
  const config = await explainDecisionConfig(cfg, rest, notes);
  const input = {
    pod: { namespace, name: podName, annotations: keptAnnotations(pod.metadata?.annotations) },
    serviceAccount: sa ? { annotations: keptAnnotations(sa.metadata?.annotations) } : undefined,
    namespace: ns ? { annotations: keptAnnotations(ns.metadata?.annotations) } : undefined,
    config,
  };
  const { decision, steps } = explainRole(input);
  const v1 = imdsv1For(input.namespace?.annotations, cfg.imdsv1);
  const lines = [
    `pod ${namespace}/${podName} (uid ${pod.metadata?.uid ?? '?'}, node ${pod.spec?.nodeName ?? '-'}, ip ${pod.status?.podIP ?? '-'}, phase ${pod.status?.phase ?? '-'}${pod.spec?.hostNetwork ? ', hostNetwork: never served' : ''})`,
    `service account ${saName}${sa ? '' : ' (not found)'}`,
    'inputs:',
    `  pod annotations: ${JSON.stringify(input.pod.annotations)}`,
    `  service account annotations: ${JSON.stringify(input.serviceAccount?.annotations ?? null)}`,
    `  namespace annotations: ${JSON.stringify(input.namespace?.annotations ?? null)}`,
    `  config: ${JSON.stringify(config)}`,
    ...notes.map((n) => `  note: ${n}`),
    'rules applied:',
    ...steps.map((s) => `  ${s}`),
    `imdsv1: ${v1.policy}${v1.problem ? ` (${v1.problem})` : ''}`,
    decision.allow
      ? `decision: ALLOW ${decision.roleArn} (source ${decision.source}${decision.externalId ? ', external ID set' : ''})`
      : `decision: DENY ${decision.reason}: ${decision.detail}`,
  ];
  out.write(`${lines.join('\n')}\n`);
  return decision.allow ? 0 : 1;
}

/**
 * The agent's decision config (roles/decision-config.ts), base-ARN discovery included. The account comes
 * from the metadata service only where the agent would ask it: inside a pod (in-cluster credentials, as
 * `kubectl exec <agent-pod> -- imdsgate explain`) or with an explicit --upstream. From a workstation the
 * default address would be the workstation's own metadata service, a different account.
 */
async function explainDecisionConfig(cfg: Config, argv: string[], notes: string[]): Promise<DecisionConfig> {
  const explicitUpstream = argv.some((a) => a.startsWith('--upstream')) || process.env.IMDSGATE_UPSTREAM;
  const inPod = cfg.kubeconfig === undefined && process.env.KUBERNETES_SERVICE_HOST !== undefined;
  if (cfg.baseRoleArn !== undefined || !(explicitUpstream || inPod)) {
    if (cfg.baseRoleArn === undefined)
      notes.push('account unknown: pass --base-role-arn, or run inside the agent pod, for bare role names');
    return buildDecisionConfig(cfg, undefined);
  }
  const [{ createUpstream }, { createMetrics }, { createLogger }] = await Promise.all([
    import('../imds/upstream.js'),
    import('../metrics.js'),
    import('../logger.js'),
  ]);
  const upstream = createUpstream({
    url: cfg.upstream,
    timeoutMs: cfg.upstreamTimeoutMs,
    clock: Date.now,
    metrics: createMetrics(undefined, { defaults: false }),
    logger: createLogger('silent'),
  });
  try {
    return await buildDecisionConfig(cfg, upstream, (e) =>
      notes.push(`account unknown (${e.message}): bare role names are denied, as the agent would`),
    );
  } finally {
    await upstream.close();
  }
}
