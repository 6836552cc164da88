// The chart installed on the node test bed exactly as a user would: real helm, values only.
import { join } from 'node:path';
import { REPO_ROOT } from '../env/index.js';
import { CHART, helm, kubectl, NODE_IP } from './bed.js';
import { roleArn } from './pods.js';

export const RELEASE = 'imdsgate';
export const RELEASE_NS = 'imdsgate';
export const HELM_TEST_ROLE = roleArn('helm-test');

/** The values file a user would have for this cluster (test/node/values.yaml), plus `extra` flags. */
export function values(extra: string[] = []): string[] {
  return ['--values', join(REPO_ROOT, 'test/node/values.yaml'), ...extra];
}

/** helm upgrade --install, waiting for the DaemonSet to be Ready; throws with helm's output. */
export async function installChart(extra: string[] = []): Promise<void> {
  const r = await helm([
    'upgrade',
    '--install',
    RELEASE,
    CHART,
    '--namespace',
    RELEASE_NS,
    '--create-namespace',
    '--wait',
    '--timeout',
    '180s',
    ...values(extra),
  ]);
  if (r.code !== 0) throw new Error(`helm upgrade --install failed (${r.code}):\n${r.out}`);
  // helm --wait counts a DaemonSet ready at `desired - maxUnavailable` ready pods: 0 of 1 on this node.
  // `kubectl rollout status` waits for every node's pod to be updated and Ready, as docs/install-eks.md says.
  await kubectl(['rollout', 'status', `ds/${RELEASE}`, '-n', RELEASE_NS, '--timeout=180s']);
}

/** The agent's DaemonSet status as kubectl reports it. */
export async function daemonSetStatus(): Promise<{
  ready: number;
  updated: number;
  desired: number;
  generation: number;
  observed: number;
}> {
  const ds = JSON.parse(await kubectl(['get', 'ds', '-n', RELEASE_NS, RELEASE, '-o', 'json'])) as {
    metadata: { generation: number };
    status: {
      numberReady?: number;
      updatedNumberScheduled?: number;
      desiredNumberScheduled?: number;
      observedGeneration?: number;
    };
  };
  return {
    ready: ds.status.numberReady ?? 0,
    updated: ds.status.updatedNumberScheduled ?? 0,
    desired: ds.status.desiredNumberScheduled ?? 0,
    generation: ds.metadata.generation,
    observed: ds.status.observedGeneration ?? 0,
  };
}

/** The agent's metrics, read inside the node from the address the Downward API gave it. */
export const METRICS_URL = `http://${NODE_IP}:9181/metrics`;

/** The agent pod is Ready with a container started at or after `since` (ms): a restarted agent, not a stale status. */
export async function agentReadySince(since: number): Promise<boolean | undefined> {
  const list = JSON.parse(
    await kubectl(['get', 'pods', '-n', RELEASE_NS, '-l', 'app.kubernetes.io/name=imdsgate', '-o', 'json']),
  ) as {
    items: {
      status: { containerStatuses?: { ready: boolean; state: { running?: { startedAt: string } } }[] };
    }[];
  };
  const c = list.items[0]?.status.containerStatuses?.[0];
  const started = Date.parse(c?.state.running?.startedAt ?? '');
  return c?.ready === true && started >= Math.floor(since / 1000) * 1000 ? true : undefined;
}
