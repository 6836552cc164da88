// Shared plumbing of the real IMDS clients: a clean environment (no credentials, no config files, IMDS
// at `endpoint`), optional `ip netns exec`, and one JSON line of output parsed into credentials.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

export interface ImdsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  /** ISO 8601, as the client reported it. */
  expiration?: string;
}

export interface ClientOptions {
  /** Base URL of the metadata service, e.g. http://169.254.169.254 or http://127.0.0.1:PORT. */
  endpoint: string;
  /** Extra environment, e.g. { AWS_EC2_METADATA_V1_DISABLED: 'true' }; wins over the defaults. */
  env?: Record<string, string>;
  /** Run inside this network namespace (netns.ts). */
  netns?: string;
  timeoutMs?: number;
}

export type ClientName = 'botocore' | 'awscli' | 'js' | 'goimds';

/** The client ran but got no credentials (or crashed); `output` holds what it printed. */
export class ClientError extends Error {
  constructor(
    readonly client: ClientName,
    message: string,
    readonly output: string,
  ) {
    super(`${client}: ${message}`);
    this.name = 'ClientError';
  }
}

/** Every variable an SDK could take credentials or config from is absent; IMDS is at `endpoint`. */
export function cleanEnv(o: ClientOptions, home: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    AWS_CONFIG_FILE: join(home, 'no-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(home, 'no-credentials'),
    AWS_EC2_METADATA_SERVICE_ENDPOINT: o.endpoint,
    AWS_REGION: 'us-east-1',
    AWS_PAGER: '',
    ...o.env,
  };
}

/** Runs cmd (in o.netns if set) with a clean env; returns parsed credentials or throws ClientError. */
export async function runClient(
  client: ClientName,
  cmd: string,
  args: string[],
  o: ClientOptions,
  parse: (stdout: string) => ImdsCredentials,
): Promise<ImdsCredentials> {
  const home = mkdtempSync(join(tmpdir(), `imdsgate-client-${client}-`));
  try {
    const [file, argv] = o.netns ? ['ip', ['netns', 'exec', o.netns, cmd, ...args]] : [cmd, args];
    const r = await execa(file, argv, {
      env: cleanEnv(o, home),
      extendEnv: false,
      reject: false,
      timeout: o.timeoutMs ?? 30_000,
      cwd: home,
    });
    const output = `${r.stdout}\n${r.stderr}`.trim();
    if (r.timedOut) throw new ClientError(client, `timed out after ${o.timeoutMs ?? 30_000}ms`, output);
    if (r.exitCode !== 0)
      throw new ClientError(client, `exited ${r.exitCode}: ${lastLine(r.stderr)}`, output);
    try {
      return parse(r.stdout);
    } catch (err) {
      throw new ClientError(client, `unexpected output (${(err as Error).message})`, output);
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/** Checks the fields every client must report. */
export function toCredentials(j: Record<string, unknown>): ImdsCredentials {
  const str = (k: string) => {
    const v = j[k];
    if (typeof v !== 'string' || v === '') throw new Error(`missing ${k}`);
    return v;
  };
  const expiration = typeof j.expiration === 'string' && j.expiration !== '' ? j.expiration : undefined;
  return {
    accessKeyId: str('accessKeyId'),
    secretAccessKey: str('secretAccessKey'),
    sessionToken: str('sessionToken'),
    ...(expiration ? { expiration } : {}),
  };
}

export const lastLine = (s: string): string => s.trim().split('\n').at(-1) ?? '';
export const CLIENTS_DIR = new URL('.', import.meta.url).pathname;

/** The clients that print their credentials as one JSON object on the last line of stdout. */
export const jsonCredentials = (out: string): ImdsCredentials =>
  toCredentials(JSON.parse(lastLine(out)) as Record<string, unknown>);
