// The conntrack flush that follows every install or repair of the rules cuts only flows that really
// reached the metadata service (src/netfilter/iptables.ts conntrackFlushArgs), never a pod's request in
// flight to the agent through the DNAT. Proof: a pod keeps one keep-alive connection through the DNAT and
// sends requests the agent holds for seconds (its source is unknown to the agent, so each credential
// request waits --unknown-pod-wait-ms before its 404), while the test makes the agent repair its rules,
// and so flush conntrack, again and again. Before the fix the agent's answer, sent after a flush, left
// with the agent's own address and the pod's kernel reset the connection. That a connection opened to
// the real service before the rules is still cut is sandbox.test.ts's "conntrack flush" test.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deletePod } from '../env/kube.js';
import { inNetns, mustInNetns } from './sandbox/netns.js';
import { createSandbox, type Sandbox, type SandboxPod } from './sandbox/sandbox.js';

const WAIT_MS = 2500;
const REQUESTS = 4;
// One HTTP/1.1 connection, REQUESTS slow requests in a row; prints one line per request.
const SLOW_CLIENT = `
import http.client, sys, time
c = http.client.HTTPConnection("169.254.169.254", 80, timeout=10)
for i in range(int(sys.argv[1])):
    t0 = time.time()
    try:
        c.request("GET", "/latest/meta-data/iam/security-credentials/"); r = c.getresponse(); r.read()
        print("answer", r.status, round(time.time() - t0, 2), flush=True)
    except Exception as e:
        print("failed", type(e).__name__, round(time.time() - t0, 2), flush=True)
        c = http.client.HTTPConnection("169.254.169.254", 80, timeout=10)
`;

let sb: Sandbox;
let gone: SandboxPod;
const repairs = () =>
  sb
    .agent()!
    .log()
    .split('\n')
    .filter((l) => l.includes('interception rules drifted; restored')).length;

beforeAll(async () => {
  sb = await createSandbox({
    backend: 'nft',
    pods: [{ name: 'gone', namespace: 'ct-a', role: 'app-a' }],
    allowedRoles: { 'ct-a': ['app-a'] },
    agentArgs: [`--unknown-pod-wait-ms=${WAIT_MS}`],
  });
  [gone] = sb.pods as [SandboxPod];
  await sb.startAgent();
  // The pod's object goes; its network namespace stays: the agent no longer knows the source address.
  await deletePod(gone.kubeNamespace, gone.name);
}, 240_000);
afterAll(async () => {
  await sb?.destroy();
});

describe('repairs while requests are in flight to the agent', () => {
  it('cut none of them', async () => {
    await expect
      .poll(async () => (await sb.curl(gone, '/latest/meta-data/iam/security-credentials/')).status, {
        timeout: 20_000,
      })
      .toBe(404);
    const before = repairs();
    const client = inNetns(gone.netns, sb.env.python, ['-c', SLOW_CLIENT, String(REQUESTS)]);
    let done = false;
    void client.finally(() => (done = true));
    // An extra rule in our nat chain is drift: the guard (every 2 s) restores the chain and flushes.
    while (!done) {
      await mustInNetns(sb.topology.node, 'iptables-nft', [
        '-w',
        '5',
        '-t',
        'nat',
        '-A',
        'IMDSGATE',
        '-s',
        '169.254.250.250/32',
        '-j',
        'RETURN',
      ]);
      await new Promise((r) => setTimeout(r, 700));
    }
    const lines = (await client).stdout.trim().split('\n');
    expect(lines).toHaveLength(REQUESTS);
    for (const line of lines) {
      const [what, status, seconds] = line.split(' ');
      expect(what, line).toBe('answer');
      expect(status).toBe('404');
      expect(Number(seconds)).toBeGreaterThanOrEqual((WAIT_MS - 100) / 1000);
    }
    // Repairs (and flushes) happened while the requests were held.
    expect(repairs() - before).toBeGreaterThanOrEqual(3);
  });
});
