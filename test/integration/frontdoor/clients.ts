// Client runs the shared ones in test/clients/ do not cover: the JS provider called several times in one
// process (to see its v1 latch), and the AWS CLI signing a real STS call with what it got.
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';

import { ClientError, CLIENTS, type ClientName } from '../../clients/index.js';

/** One run of a shared client (test/clients/), errors as data. */
export async function attempt(
  name: ClientName,
  endpoint: string,
  env: Record<string, string> = {},
): Promise<ClientResult> {
  try {
    const c = await CLIENTS[name]({ endpoint, env });
    return {
      accessKeyId: c.accessKeyId,
      ...(c.expiration ? { expiration: c.expiration } : {}),
      raw: JSON.stringify(c),
    };
  } catch (err) {
    if (err instanceof ClientError) return { error: err.message, raw: err.output };
    throw err;
  }
}

export interface ClientResult {
  expiration?: string;
  accessKeyId?: string;
  error?: string;
  raw: string;
}

/** A clean environment: no credentials or config files, IMDS at `endpoint`. */
export function cleanEnv(endpoint: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: '/nonexistent',
    AWS_CONFIG_FILE: '/nonexistent/config',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials',
    AWS_EC2_METADATA_SERVICE_ENDPOINT: endpoint,
    AWS_METADATA_SERVICE_TIMEOUT: '2',
    ...extra,
  };
}

/** AWS CLI: the pod's credentials sign a real call to moto; the caller ARN names the role. */
export async function awsCliCallerArn(awsCli: string, endpoint: string, sts: string): Promise<ClientResult> {
  const r = await execa(
    awsCli,
    ['sts', 'get-caller-identity', '--endpoint-url', sts, '--region', 'us-east-1', '--output', 'json'],
    {
      env: cleanEnv(endpoint),
      extendEnv: false,
      reject: false,
      timeout: 30_000,
    },
  );
  if (r.exitCode !== 0) return { error: r.stderr, raw: r.stdout };
  return { accessKeyId: (JSON.parse(r.stdout) as { Arn: string }).Arn, raw: r.stdout };
}

const JS = `
import { fromInstanceMetadata } from '@smithy/credential-provider-imds';
const provider = fromInstanceMetadata({ timeout: 1000, maxRetries: 0 });
const out = [];
for (let i = 0; i < Number(process.env.CALLS ?? 1); i++) {
  try { const c = await provider(); out.push({ accessKeyId: c.accessKeyId, expiration: c.expiration?.toISOString() }); }
  catch (e) { out.push({ error: e.name + ': ' + e.message }); }
}
console.log(JSON.stringify(out));
`;

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** JS SDK v3 (@smithy/credential-provider-imds) in a child node; `calls` provider calls in one process. */
export async function jsV3(
  endpoint: string,
  calls = 1,
  extra: Record<string, string> = {},
): Promise<ClientResult[]> {
  const r = await execa(process.execPath, ['--input-type=module', '-e', JS], {
    cwd: ROOT,
    env: { ...cleanEnv(endpoint, extra), CALLS: String(calls) },
    extendEnv: false,
    reject: false,
    timeout: 20_000,
  });
  if (r.exitCode !== 0) return [{ error: r.stderr, raw: r.stdout }];
  return (JSON.parse(r.stdout) as ClientResult[]).map((x) => ({ ...x, raw: r.stdout }));
}
