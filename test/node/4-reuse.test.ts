// IP reuse as a real CNI IPAM does it: host-local hands out the bed's 28 pod addresses round robin, so
// pods are created and deleted, alternating two roles, until an address comes back to a pod with the
// other role. Every pod asks for credentials from the first instant of its container; no pod may ever
// be answered with a role that is not its own.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, kubectl, podLog, podState, until, freshNamespace } from './bed.js';
import { clientPod, curlLoopScript, parseTries, roleArn } from './pods.js';
import { installChart } from './release.js';

const NS = 'bed-reuse';
const ROLES = ['reuse-x', 'reuse-y'] as const;
const BATCH = 4;
const MAX_PODS = 48;

/** Asks for credentials for ~4 s from the container's first instant, then says `done`. */
const SCRIPT = `(${curlLoopScript(0.1)}) & sleep 4; kill $!; echo done; exec sleep infinity`;

beforeAll(async () => {
  await installChart();
  await freshNamespace(NS);
  await apply(
    ...ROLES.map((r) => ({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: r, namespace: NS, annotations: { 'eks.amazonaws.com/role-arn': roleArn(r) } },
    })),
  );
});

describe('IP reuse through the real IPAM', () => {
  it('a pod that gets a retired address never receives the previous owner\u2019s role', async () => {
    const owners = new Map<string, string>(); // ip → role of its last pod
    let reused = 0;
    let served = 0;
    for (let n = 0; n < MAX_PODS && reused < 2; n += BATCH) {
      const batch = Array.from({ length: BATCH }, (_, i) => ({
        name: `p${n + i}`,
        role: ROLES[(n + i) % 2]!,
      }));
      await apply(
        ...batch.map((p) =>
          clientPod({ namespace: NS, name: p.name, serviceAccount: p.role, script: SCRIPT }),
        ),
      );
      for (const p of batch) {
        await until(`${p.name} done`, 60_000, async () =>
          podLog(NS, p.name).includes('done') ? true : undefined,
        );
        const ip = (await podState(NS, p.name))?.ip ?? '';
        const tries = parseTries(podLog(NS, p.name));
        for (const t of tries) if (t.listing === '200') expect(t.role, `${p.name} on ${ip}`).toBe(p.role);
        served += tries.filter((t) => t.creds === '200').length;
        if (owners.has(ip) && owners.get(ip) !== p.role) reused++;
        owners.set(ip, p.role);
      }
      await kubectl([
        'delete',
        'pod',
        '-n',
        NS,
        ...batch.map((p) => p.name),
        '--grace-period=1',
        '--wait=true',
      ]);
    }
    console.log(
      `IP reuse: ${owners.size} addresses, ${reused} handed to the other role, ${served} answers served`,
    );
    expect(reused).toBeGreaterThanOrEqual(1);
    expect(served).toBeGreaterThan(0);
  });
});

afterAll(async () => {
  await kubectl(['delete', 'namespace', NS, '--wait=false'], { reject: false });
});
