// amazon-ec2-metadata-mock (AEMM) as the upstream IMDS of tests: on loopback, or inside a test network
// namespace (e.g. on 169.254.169.254:80 of a "cloud" namespace). Without `config` it serves AEMM's own
// defaults (node role "baskinc-role", key "12345678901"); `config` is merged over them (AEMM's JSON
// config format: { metadata: { values: {...}, paths: {...} }, dynamic: {...} }).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { testEnv } from './index.js';
import { assertLinkLocal } from './netns.js';

export interface AemmOptions {
  host?: string;
  port?: number;
  /** --imdsv2: token-less requests get 401. */
  imdsv2Only?: boolean;
  /** Run inside this network namespace (created with netns.ts); default port then is 80. */
  netns?: string;
  config?: Record<string, unknown>;
}

export interface Aemm {
  url: string;
  host: string;
  port: number;
  /** AEMM's stdout+stderr so far (useful in assertion messages). */
  logs(): string;
  stop(): Promise<void>;
}

/** Credentials config with a future expiry: SDKs may refuse or warn about AEMM's 2020 default. */
export function aemmCredentialsConfig(
  creds: { accessKeyId: string; secretAccessKey: string; token: string; role?: string },
  expiration: Date = new Date(Date.now() + 6 * 3600_000),
): Record<string, unknown> {
  const role = creds.role ?? 'baskinc-role';
  return {
    metadata: {
      paths: { 'iam-security-credentials': `/latest/meta-data/iam/security-credentials/${role}` },
      values: {
        'iam-security-credentials-role': role,
        'iam-security-credentials': {
          Code: 'Success',
          LastUpdated: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
          Type: 'AWS-HMAC',
          AccessKeyId: creds.accessKeyId,
          SecretAccessKey: creds.secretAccessKey,
          Token: creds.token,
          Expiration: expiration.toISOString().replace(/\.\d+Z$/, 'Z'),
        },
      },
    },
  };
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, host, r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

export async function startAemm(opts: AemmOptions = {}): Promise<Aemm> {
  const host = opts.host ?? (opts.netns ? '169.254.169.254' : '127.0.0.1');
  if (opts.netns === undefined && host !== '127.0.0.1') assertLoopback(host);
  if (opts.netns !== undefined) assertLinkLocal(host);
  const port = opts.port ?? (opts.netns ? 80 : await freePort(host));
  // A private HOME: AEMM would otherwise read $HOME/aemm-config.json if one existed.
  const home = mkdtempSync(join(tmpdir(), 'imdsgate-aemm-'));
  const configFile = join(home, 'aemm-config.json');
  writeFileSync(configFile, JSON.stringify(opts.config ?? {}));
  const args = ['-n', host, '-p', String(port), '-c', configFile, ...(opts.imdsv2Only ? ['--imdsv2'] : [])];
  const bin = testEnv().bins.aemm;
  const [cmd, argv] = opts.netns ? ['ip', ['netns', 'exec', opts.netns, bin, ...args]] : [bin, args];
  let output = '';
  const child = execa(cmd, argv, {
    env: { HOME: home, PATH: process.env.PATH ?? '' },
    extendEnv: false,
    reject: false,
    all: true,
  });
  child.all?.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const stop = async () => {
    child.kill('SIGTERM');
    await child;
    rmSync(home, { recursive: true, force: true });
  };
  try {
    await waitReady(url, child, opts.netns);
  } catch (err) {
    await stop();
    throw new Error(`AEMM did not start at ${url}: ${(err as Error).message}\n${output}`);
  }
  return { url, host, port, logs: () => output, stop };
}

function assertLoopback(host: string): void {
  if (!host.startsWith('127.') && host !== '::1')
    throw new Error(`AEMM outside a netns must bind loopback, not ${host}`);
}

/** Polls until AEMM answers anything (401 in IMDSv2-only mode counts); from inside the netns if any. */
async function waitReady(url: string, child: ResultPromise, netns?: string): Promise<void> {
  const probe = `${url}/latest/meta-data/instance-id`;
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}`);
    const ok = netns
      ? (
          await execa('ip', ['netns', 'exec', netns, 'curl', '-s', '-o', '/dev/null', '-m', '1', probe], {
            reject: false,
          })
        ).exitCode === 0
      : await fetch(probe, { signal: AbortSignal.timeout(1000) }).then(
          () => true,
          () => false,
        );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('timed out after 10s');
}
