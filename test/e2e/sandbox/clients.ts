// Real AWS clients run inside a pod network namespace with their default credential chains, so each finds
// credentials only where an EC2 workload would: 169.254.169.254. Every AWS_* variable and the shared
// config files are removed from their environment, so nothing on this machine can answer instead.
// botocore and the AWS CLI then call GetCallerIdentity on moto (relayed into the pod), which names the
// role the credentials belong to.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { ROOT } from './cli.js';
import type { SandboxEnv } from './env.js';

export const CLIENTS = ['botocore', 'aws-cli', 'js-sdk', 'goimds'] as const;
export type ClientName = (typeof CLIENTS)[number];

export interface ClientResult {
  readonly accessKeyId?: string;
  /** Caller identity ARN from STS (botocore, aws-cli). */
  readonly arn?: string;
  readonly error?: string;
}

const BOTOCORE = `
import json, sys, botocore.session
s = botocore.session.get_session()
c = s.get_credentials()
if c is None:
    print(json.dumps({"error": "no credentials found"})); sys.exit(1)
f = c.get_frozen_credentials()
sts = s.create_client("sts", region_name="us-east-1", endpoint_url=sys.argv[1])
print(json.dumps({"accessKeyId": f.access_key, "method": c.method, "arn": sts.get_caller_identity()["Arn"]}))
`;

function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('AWS_')) env[k] = v;
  }
  const home = mkdtempSync(join(tmpdir(), 'imdsgate-client-home-'));
  return {
    ...env,
    HOME: home,
    AWS_CONFIG_FILE: join(home, 'none'),
    AWS_SHARED_CREDENTIALS_FILE: join(home, 'none'),
    AWS_DEFAULT_REGION: 'us-east-1',
    LC_ALL: 'C',
  };
}

function command(client: ClientName, env: SandboxEnv): string[] {
  switch (client) {
    case 'botocore':
      return [env.python, '-c', BOTOCORE, env.sts.endpoint];
    case 'aws-cli':
      return [
        env.awsCli,
        'sts',
        'get-caller-identity',
        '--endpoint-url',
        env.sts.endpoint,
        '--output',
        'json',
      ];
    case 'js-sdk':
      return [process.execPath, join(ROOT, 'test/e2e/sandbox/js-client.mjs')];
    case 'goimds':
      return [env.goimds];
  }
}

export async function runClient(client: ClientName, netns: string, env: SandboxEnv): Promise<ClientResult> {
  const [file, ...args] = command(client, env);
  const r = await execa('ip', ['netns', 'exec', netns, file!, ...args], {
    reject: false,
    extendEnv: false,
    env: cleanEnv(),
    timeout: 60_000,
    cwd: ROOT,
  });
  if (r.exitCode !== 0)
    return { error: `${client} exit ${r.exitCode}: ${r.stderr.slice(-800)} ${r.stdout.slice(-400)}` };
  return parse(client, r.stdout);
}

function parse(client: ClientName, stdout: string): ClientResult {
  // The AWS CLI prints one indented JSON document; the others print one JSON line last.
  const text = client === 'aws-cli' ? stdout : (stdout.trim().split('\n').pop() ?? '{}');
  const doc = JSON.parse(text) as Record<string, string | undefined>;
  if (client === 'aws-cli') return { ...(doc.Arn !== undefined ? { arn: doc.Arn } : {}) };
  const accessKeyId = doc.accessKeyId ?? doc.AccessKeyId ?? doc.AccessKeyID;
  return {
    ...(accessKeyId !== undefined ? { accessKeyId } : {}),
    ...(doc.arn !== undefined ? { arn: doc.arn } : {}),
    ...(doc.error !== undefined ? { error: doc.error } : {}),
  };
}
