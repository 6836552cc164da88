// Whole-tree crawlers from inside pods, through the real DNAT, against the built agent with AEMM as the
// node's IMDS: cloud-init's own EC2 crawler (Debian's package, unpacked by test/env/cloud-init.sh) and a
// stricter full-tree walk (test/e2e/crawler/full_crawl.py). Both stop at the first listed entry that
// does not answer, so they only complete when every listing names only what the pod can read. Neither may
// come back with a node secret: the node role's keys and token, its profile, or the node's user-data.
import { execa } from 'execa';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../env/index.js';
import { inNetns } from './sandbox/netns.js';
import { createSandbox, curlIn, type Sandbox, type SandboxPod } from './sandbox/sandbox.js';
import { METADATA_IP } from './sandbox/topology.js';

const CRAWLERS = join(REPO_ROOT, 'test/e2e/crawler');
let sb: Sandbox;
let withRole: SandboxPod;
let noRole: SandboxPod;
let cloudInit: string;
let nodeSecrets: string[];

beforeAll(async () => {
  // In CI a missing cloud-init fails here (the script exits non-zero), never skips.
  cloudInit = (await execa('bash', [join(REPO_ROOT, 'test/env/cloud-init.sh')])).stdout.trim();
  sb = await createSandbox({
    backend: 'nft',
    pods: [
      { name: 'crawler', namespace: 'crawl-a', role: 'app-a' },
      { name: 'norole', namespace: 'crawl-b' },
    ],
    allowedRoles: { 'crawl-a': ['app-a'] },
  });
  [withRole, noRole] = sb.pods as [SandboxPod, SandboxPod];
  await sb.startAgent();
  nodeSecrets = await readNodeSecrets(sb);
}, 240_000);
afterAll(async () => {
  await sb?.destroy();
});

/** What only the node may see, read straight from the real service in the node's own namespace. */
async function readNodeSecrets(s: Sandbox): Promise<string[]> {
  const base = `http://${METADATA_IP}/latest`;
  const role = (await curlIn(s.topology.node, `${base}/meta-data/iam/security-credentials/`)).body.trim();
  const creds = JSON.parse(
    (await curlIn(s.topology.node, `${base}/meta-data/iam/security-credentials/${role}`)).body,
  ) as Record<string, string>;
  const info = JSON.parse((await curlIn(s.topology.node, `${base}/meta-data/iam/info`)).body) as Record<
    string,
    string
  >;
  const userData = (await curlIn(s.topology.node, `${base}/user-data`)).body.trim();
  const secrets = [creds.AccessKeyId, creds.SecretAccessKey, creds.Token, info.InstanceProfileArn, userData];
  for (const v of secrets) expect(v, 'node secret readable in the node namespace').toMatch(/.{8,}/);
  return secrets as string[];
}

const run = (pod: SandboxPod, script: string, args: string[]) =>
  inNetns(pod.netns, sb.env.python, [join(CRAWLERS, script), ...args]);

/** Each secret as a whole token: AEMM's node key id is 11 digits, inside the 12-digit account ID. */
const leaks = (text: string) =>
  nodeSecrets.filter((s) =>
    new RegExp(`(?<![A-Za-z0-9])${s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![A-Za-z0-9])`).test(text),
  );

describe("cloud-init's EC2 crawler", () => {
  it.each([
    ['with a role', () => withRole, true],
    ['without a role', () => noRole, false],
  ])('completes from a pod %s and finds no node secret', async (_name, pod, hasRole) => {
    const r = await run(pod(), 'cloud_init_crawl.py', [cloudInit]);
    expect(r.exitCode, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as {
      'meta-data': Record<string, unknown>;
      dynamic: { 'instance-identity': { document?: { instanceId?: string } } };
      warnings: string[];
    };
    expect(out.warnings.filter((w) => /Failed|Skipped/.test(w))).toEqual([]);
    expect(out['meta-data']['instance-id']).toBe('i-1234567890abcdef0');
    expect(out['meta-data']).toHaveProperty('placement.availability-zone');
    expect(out.dynamic['instance-identity'].document?.instanceId).toBe('i-1234567890abcdef0');
    expect('identity-credentials' in out['meta-data']).toBe(false);
    expect('iam' in out['meta-data']).toBe(hasRole);
    if (hasRole) {
      expect(out['meta-data']).toHaveProperty('iam.info.InstanceProfileArn');
      expect(JSON.stringify(out['meta-data'].iam)).toContain('instance-profile/app-a');
    }
    expect(leaks(r.stdout + r.stderr)).toEqual([]);
  });
});

describe('a full-tree crawl (security-credentials included)', () => {
  it.each([
    ['with a role', () => withRole, true],
    ['without a role', () => noRole, false],
  ])('completes from a pod %s, every listed entry readable, no node secret', async (_n, pod, hasRole) => {
    const r = await run(pod(), 'full_crawl.py', []);
    const out = JSON.parse(r.stdout) as { fetched: string[]; failed: string | null };
    expect(out.failed).toBeNull();
    expect(r.exitCode).toBe(0);
    expect(out.fetched.length).toBeGreaterThan(50);
    const credsFetched = out.fetched.filter((u) => /security-credentials\/[^/]+$/.test(u));
    expect(credsFetched).toEqual(
      hasRole ? [`http://${METADATA_IP}/latest/meta-data/iam/security-credentials/app-a`] : [],
    );
    if (hasRole) expect(r.stdout).toMatch(/AccessKeyId\\?"\s*:\s*\\?"ASIA/);
    expect(leaks(r.stdout + r.stderr)).toEqual([]);
  });
});
