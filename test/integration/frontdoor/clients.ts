// Real SDK clients, run as child processes with a clean environment pointed at an endpoint (ENV's
// test/clients/ will offer the same; these keep the front-door tests self-contained until then).
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';

export interface ClientResult {
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

const BOTOCORE = `
import json, botocore.session
try:
    c = botocore.session.get_session().get_credentials()
    print(json.dumps({"accessKeyId": c.access_key if c else None, "method": c.method if c else None}))
except Exception as e:
    print(json.dumps({"error": type(e).__name__ + ": " + str(e)}))
`;

export async function botocore(
  python: string,
  endpoint: string,
  extra: Record<string, string> = {},
): Promise<ClientResult> {
  const r = await execa(python, ['-c', BOTOCORE], {
    env: cleanEnv(endpoint, extra),
    extendEnv: false,
    reject: false,
    timeout: 20_000,
  });
  return parse(r.stdout, r.stderr);
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

function parse(stdout: string, stderr: string): ClientResult {
  try {
    const j = JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as {
      accessKeyId?: string | null;
      error?: string;
    };
    return {
      ...(j.accessKeyId ? { accessKeyId: j.accessKeyId } : {}),
      ...(j.error ? { error: j.error } : {}),
      raw: stdout + stderr,
    };
  } catch {
    return { error: stderr || stdout, raw: stdout + stderr };
  }
}
