// App pods on the real node, talking to the plain metadata address: denied pods get IMDS-shaped 404s
// and never the node's credentials, instance data still passes, `helm test` passes, and a hostNetwork pod
// is shown for what it is (it bypasses the DNAT: docs/install-eks.md says what to do about it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, helm, kubectl, NODE_ROLE, podLog, until, freshNamespace } from './bed.js';
import { clientPod, roleArn } from './pods.js';
import { installChart, RELEASE, RELEASE_NS } from './release.js';

const NS = 'bed-apps';
const LOCKED = 'bed-locked';
const PATHS = [
  'meta-data/iam/security-credentials/',
  `meta-data/iam/security-credentials/${NODE_ROLE}`,
  'meta-data/iam/info',
  'meta-data/instance-id',
];
/** One `probe <path> <status> <body>` line per path, then `done`. */
const PROBE_SCRIPT = `
md=http://169.254.169.254/latest
tok=$(curl -s -m 3 -X PUT -H 'x-aws-ec2-metadata-token-ttl-seconds: 60' $md/api/token)
for p in ${PATHS.join(' ')}; do
  code=$(curl -s -m 3 -o /tmp/b -w '%{http_code}' -H "x-aws-ec2-metadata-token: $tok" "$md/$p")
  echo "probe $p $code $(head -c 400 /tmp/b | tr -d '\\n')"
done
echo done; exec sleep infinity`;

function probes(ns: string, pod: string): Map<string, { status: string; body: string }> {
  const m = new Map<string, { status: string; body: string }>();
  for (const l of podLog(ns, pod)) {
    const r = /^probe (\S+) (\d{3}) ?(.*)$/.exec(l);
    if (r) m.set(r[1]!, { status: r[2]!, body: r[3]! });
  }
  return m;
}
const finished = (ns: string, pod: string) =>
  until(`${ns}/${pod} probes`, 90_000, async () => (podLog(ns, pod).includes('done') ? true : undefined));

beforeAll(async () => {
  await installChart(); // no-op when 1-boot installed it
  await freshNamespace(NS);
  await freshNamespace(LOCKED, { 'iam.amazonaws.com/allowed-roles': '["only-this-one"]' });
  await apply({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: {
      name: 'app-b',
      namespace: LOCKED,
      annotations: { 'eks.amazonaws.com/role-arn': roleArn('app-b') },
    },
  });
  await apply(
    clientPod({ namespace: LOCKED, name: 'forbidden', serviceAccount: 'app-b', script: PROBE_SCRIPT }),
    clientPod({ namespace: NS, name: 'roleless', script: PROBE_SCRIPT }),
    clientPod({ namespace: NS, name: 'host-network', script: PROBE_SCRIPT, hostNetwork: true }),
  );
});

describe('pods the agent must refuse', () => {
  it.each([
    [LOCKED, 'forbidden'],
    [NS, 'roleless'],
  ])(
    '%s/%s: 404 on every credential path, the node role never named; instance data forwarded',
    async (ns, pod) => {
      await finished(ns, pod);
      const p = probes(ns, pod);
      for (const path of PATHS.slice(0, 3)) {
        expect(p.get(path)?.status, path).toBe('404');
        expect(p.get(path)?.body, path).not.toMatch(/AccessKeyId|baskinc|Token/);
      }
      expect(p.get('meta-data/instance-id')).toEqual({ status: '200', body: 'i-1234567890abcdef0' });
    },
  );

  it('helm test passes (its pod is not adopted by the DaemonSet)', async () => {
    const r = await helm(['test', RELEASE, '--namespace', RELEASE_NS, '--timeout', '120s']);
    expect(r.out).toMatch(/Phase:\s+Succeeded/);
    expect(r.code, r.out).toBe(0);
  });
});

describe('hostNetwork pods', () => {
  it("bypass the DNAT and see the node's own metadata, credentials included (documented)", async () => {
    await finished(NS, 'host-network');
    const p = probes(NS, 'host-network');
    expect(p.get('meta-data/iam/security-credentials/')).toEqual({ status: '200', body: NODE_ROLE });
    expect(p.get(`meta-data/iam/security-credentials/${NODE_ROLE}`)?.body).toContain('AccessKeyId');
  });
});

afterAll(async () => {
  await kubectl(['delete', 'pod', '-n', NS, 'roleless', 'host-network', '--wait=false'], { reject: false });
  await kubectl(['delete', 'pod', '-n', LOCKED, 'forbidden', '--wait=false'], { reject: false });
});
