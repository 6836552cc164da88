// A rolling update of the agent (helm upgrade that changes the pod template) while an app pod asks for
// credentials five times a second: every answer is the pod's own role, a refusal or a timeout, never the
// node's credentials and never another role. The longest gap in service is reported.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubectl, NODE_ROLE, nodeAccessKeyId, podLog, podState, until } from './bed.js';
import { askingPod, parseTries } from './pods.js';
import { daemonSetStatus, installChart } from './release.js';

const NS = 'bed-rollout';
const ROLE = 'app-rollout';

beforeAll(async () => {
  await installChart();
  await askingPod(NS, 'steady', ROLE);
});

describe('rolling update', () => {
  it('never hands out node credentials or another role; the gap is bounded', async () => {
    const nodeKey = await nodeAccessKeyId();
    const before = await daemonSetStatus();
    const started = Date.now();
    await installChart(['--set', `podAnnotations.rollout=r${started}`]);
    await until('rollout finished', 120_000, async () => {
      const s = await daemonSetStatus();
      return s.observed > before.generation && s.updated === 1 && s.ready === 1 ? true : undefined;
    });
    await new Promise((r) => setTimeout(r, 3000)); // answers after the new agent is Ready
    const tries = parseTries(podLog(NS, 'steady')).filter((t) => t.at >= started - 2000);
    expect(tries.length).toBeGreaterThan(10);
    for (const t of tries) {
      expect(t.key).not.toBe(nodeKey);
      expect(t.role).not.toBe(NODE_ROLE);
      if (t.listing === '200') expect(t.role).toBe(ROLE);
    }
    const ok = tries.filter((t) => t.creds === '200').map((t) => t.at);
    let gap = 0;
    for (let i = 1; i < ok.length; i++) gap = Math.max(gap, ok[i]! - ok[i - 1]!);
    console.log(`rolling update: ${tries.length} tries, ${ok.length} served, longest gap ${gap} ms`);
    expect(ok.at(-1)).toBeGreaterThan(started);
    expect(gap).toBeLessThan(60_000);
    expect((await podState(NS, 'steady'))?.phase).toBe('Running');
  });
});

afterAll(async () => {
  await kubectl(['delete', 'pod', '-n', NS, 'steady', '--wait=false'], { reject: false });
});
