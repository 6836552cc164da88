// Whose role did the pod get? botocore, inside the pod namespace, takes credentials from
// 169.254.169.254 (its default chain, everything else removed by the test clients' cleanEnv) and asks
// STS (moto, relayed into the pod) GetCallerIdentity, which names the assumed role and session.
import { cleanEnv } from '../../clients/index.js';
import type { TestEnv } from '../../env/index.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

const CALLER = `
import json, sys, botocore.session
s = botocore.session.get_session()
if s.get_credentials() is None:
    print(json.dumps({"error": "no credentials found"})); sys.exit(1)
sts = s.create_client("sts", region_name="us-east-1", endpoint_url=sys.argv[1])
print(json.dumps({"arn": sts.get_caller_identity()["Arn"]}))
`;

/**
 * `ipv6`: the SDK's own IPv6 endpoint mode (AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6, so it asks
 * [fd00:ec2::254]) instead of an explicit endpoint, as a pod on an IPv6 cluster is configured.
 */
export async function callerArn(
  netns: string,
  env: TestEnv,
  endpoint: 'ipv4' | 'ipv6' = 'ipv4',
): Promise<{ arn?: string; error?: string }> {
  const home = mkdtempSync(join(tmpdir(), 'imdsgate-caller-'));
  const vars = cleanEnv({ endpoint: 'http://169.254.169.254' }, home);
  if (endpoint === 'ipv6') {
    delete vars.AWS_EC2_METADATA_SERVICE_ENDPOINT;
    vars.AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE = 'IPv6';
  }
  const r = await execa('ip', ['netns', 'exec', netns, env.python, '-c', CALLER, env.sts.endpoint], {
    env: vars,
    extendEnv: false,
    reject: false,
    timeout: 60_000,
  });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  if (!last.startsWith('{')) return { error: `exit ${r.exitCode}: ${r.stderr.slice(-600)}` };
  return JSON.parse(last) as { arn?: string; error?: string };
}
