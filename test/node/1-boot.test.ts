// The node as a user meets it: it registers with the startup taint, an app pod created before the agent
// waits, `helm install` brings the DaemonSet up through its real probes with the chart's security
// context, the agent's rules appear in the node's netfilter, the taint comes off and the waiting pod's
// very first metadata request gets its own role.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import {
  apply,
  inNode,
  kubectl,
  NODE_NAME,
  nodeProcesses,
  nodeRules,
  podLog,
  until,
  freshNamespace,
} from './bed.js';
import { callerArn, clientPod, roleArn, SDK_CLIENTS_SCRIPT } from './pods.js';
import { daemonSetStatus, installChart, METRICS_URL, RELEASE_NS } from './release.js';

const NS = 'bed-apps';
const TAINT = 'imdsgate.io/agent-not-ready';

async function nodeTaints(): Promise<string[]> {
  const n = JSON.parse(await kubectl(['get', 'node', NODE_NAME, '-o', 'json'])) as {
    spec: { taints?: { key: string; effect: string }[] };
  };
  return (n.spec.taints ?? []).map((t) => `${t.key}:${t.effect}`);
}

beforeAll(async () => {
  await freshNamespace(NS);
  await apply({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: {
      name: 'app-a',
      namespace: NS,
      annotations: { 'eks.amazonaws.com/role-arn': roleArn('app-a') },
    },
  });
});

describe('boot guard and install', () => {
  it('the node registers with the startup taint', async () => {
    expect(await nodeTaints()).toContain(`${TAINT}:NoSchedule`);
  });

  it('an app pod created before the agent stays Pending', async () => {
    await apply(
      clientPod({ namespace: NS, name: 'early', serviceAccount: 'app-a', script: SDK_CLIENTS_SCRIPT }),
    );
    await new Promise((r) => setTimeout(r, 5000));
    const pod = JSON.parse(await kubectl(['get', 'pod', '-n', NS, 'early', '-o', 'json'])) as {
      spec: { nodeName?: string };
      status: {
        phase: string;
        conditions?: { type: string; status: string; reason?: string; message?: string }[];
      };
    };
    expect(pod.status.phase).toBe('Pending');
    expect(pod.spec.nodeName).toBeUndefined();
    const scheduled = pod.status.conditions?.find((c) => c.type === 'PodScheduled');
    expect(scheduled).toMatchObject({ status: 'False', reason: 'Unschedulable' });
    expect(scheduled?.message).toMatch(/untolerated taint/);
    expect(await nodeTaints()).toContain(`${TAINT}:NoSchedule`);
  });

  it('helm install: the DaemonSet pod becomes Ready through its real probes', async () => {
    await installChart();
    const st = await daemonSetStatus();
    expect(st).toMatchObject({ desired: 1, ready: 1 });
    const pod = JSON.parse(
      await kubectl(['get', 'pods', '-n', RELEASE_NS, '-l', 'app.kubernetes.io/name=imdsgate', '-o', 'json']),
    ) as { items: { status: { conditions: { type: string; status: string }[]; hostIP: string } }[] };
    expect(pod.items).toHaveLength(1);
    expect(pod.items[0]!.status.conditions).toContainEqual(
      expect.objectContaining({ type: 'Ready', status: 'True' }),
    );
  });

  it('the agent runs unprivileged: NET_ADMIN and NET_RAW only, no new privileges, seccomp, read-only root', async () => {
    const [pid] = await nodeProcesses(/\/imdsgate serve/);
    expect(pid).toBeDefined();
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const capEff = BigInt(`0x${/CapEff:\s+(\w+)/.exec(status)![1]}`);
    // capability numbers from linux/capability.h: NET_ADMIN 12, NET_RAW 13
    expect(capEff).toBe((1n << 12n) | (1n << 13n));
    expect(status).toMatch(/NoNewPrivs:\s+1/);
    expect(status).toMatch(/Seccomp:\s+2/); // filter mode: RuntimeDefault
    // mountinfo: id parent dev root MOUNTPOINT OPTIONS ...; the container's / must be mounted ro
    const mounts = readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
      .split('\n')
      .map((l) => l.split(' '));
    expect(mounts.find((f) => f[4] === '/')?.[5]).toMatch(/^ro\b/);
  });

  it("writes its rules into the node's netfilter and listens on the Downward API's host IP", async () => {
    const rules = await nodeRules();
    expect(rules).toContain('-A PREROUTING');
    expect(rules).toMatch(/-A IMDSGATE .*-j DNAT --to-destination 169\.254\.100\.1:8181/);
    expect(rules).toContain('IMDSGATE-ANTISPOOF');
    const metrics = await inNode('curl', ['-fsS', '-m', '2', METRICS_URL]);
    expect(metrics).toMatch(/^imdsgate_ready 1$/m);
  });

  it('removes the startup taint; the waiting pod runs and its first requests get its own role', async () => {
    await until('taint removed', 30_000, async () =>
      (await nodeTaints()).includes(`${TAINT}:NoSchedule`) ? undefined : true,
    );
    await until('early pod done', 90_000, async () =>
      podLog(NS, 'early').includes('done') ? true : undefined,
    );
    const lines = podLog(NS, 'early');
    for (const client of ['awscli', 'botocore', 'goimds']) {
      const line = lines.find((l) => l.startsWith(`${client} `));
      expect(await callerArn(line), `${client}: ${line}`).toBe(roleArn('app-a'));
    }
  });
});

afterAll(async () => {
  await kubectl(['delete', 'pod', '-n', NS, 'early', '--wait=false'], { reject: false });
});
