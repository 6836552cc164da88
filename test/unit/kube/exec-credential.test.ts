// Exec-plugin kubeconfigs (`aws eks get-token`): a small fake plugin, a real child process each time.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ExecCredentialError, execToken, parseExecCredential } from '../../../src/kube/exec-credential.js';
import { parseKubeconfig } from '../../../src/kube/kubeconfig.js';

const dir = mkdtempSync(join(tmpdir(), 'imdsgate-exec-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const V1B1 = 'client.authentication.k8s.io/v1beta1';

/**
 * A plugin that prints token-<n> (n counts its runs, in `calls`), expiring after TTL_MS ms (env), records
 * its arguments and KUBERNETES_EXEC_INFO, and fails when FAIL is set.
 */
const plugin = join(dir, 'fake-get-token');
writeFileSync(
  plugin,
  `#!${process.execPath}
const fs = require('node:fs');
const calls = ${JSON.stringify(join(dir, 'calls'))};
const n = (fs.existsSync(calls) ? Number(fs.readFileSync(calls, 'utf8')) : 0) + 1;
fs.writeFileSync(calls, String(n));
fs.writeFileSync(${JSON.stringify(join(dir, 'seen'))}, JSON.stringify({ args: process.argv.slice(2), info: process.env.KUBERNETES_EXEC_INFO, region: process.env.AWS_REGION }));
if (process.env.FAIL) { process.stderr.write('could not get token: AccessDenied'); process.exit(1); }
const exp = new Date(Date.now() + Number(process.env.TTL_MS)).toISOString();
process.stdout.write(JSON.stringify({ apiVersion: '${V1B1}', kind: 'ExecCredential', status: { token: 'token-' + n, expirationTimestamp: exp } }));
`,
);
chmodSync(plugin, 0o755);
const calls = () => Number(readFileSync(join(dir, 'calls'), 'utf8'));
const kubeconfig = (env: Record<string, string>) =>
  JSON.stringify({
    apiVersion: 'v1',
    clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:6443' } }],
    users: [
      {
        name: 'eks',
        user: {
          exec: {
            apiVersion: V1B1,
            command: './fake-get-token', // relative to the kubeconfig's directory
            args: ['eks', 'get-token', '--cluster-name', 'prod'],
            env: Object.entries(env).map(([name, value]) => ({ name, value })),
            interactiveMode: 'Never',
          },
        },
      },
    ],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'eks' } }],
    'current-context': 'x',
  });

describe('exec plugin kubeconfigs', () => {
  it('runs the plugin with its args and env, uses status.token, and caches it until near expiry', async () => {
    writeFileSync(join(dir, 'calls'), '0');
    const t = parseKubeconfig(
      kubeconfig({ TTL_MS: '600000', AWS_REGION: 'eu-west-1' }),
      join(dir, 'kubeconfig'),
    );
    expect(t.token?.get()).toBe('token-1');
    expect(t.token?.get()).toBe('token-1');
    expect(calls()).toBe(1);
    const seen = JSON.parse(readFileSync(join(dir, 'seen'), 'utf8')) as {
      args: string[];
      info: string;
      region: string;
    };
    expect(seen.args).toEqual(['eks', 'get-token', '--cluster-name', 'prod']);
    expect(seen.region).toBe('eu-west-1');
    expect(JSON.parse(seen.info)).toEqual({
      apiVersion: V1B1,
      kind: 'ExecCredential',
      spec: { interactive: false },
    });
  });

  it('fetches a new token in the background once the cached one nears expiry', async () => {
    writeFileSync(join(dir, 'calls'), '0');
    let now = Date.now();
    const p = execToken(
      { apiVersion: V1B1, command: plugin, args: [], env: { TTL_MS: '120000' } },
      () => now,
    );
    expect(p.get()).toBe('token-1');
    now += 61_000; // within the last minute before expiry
    expect(p.get()).toBe('token-1'); // never waits: the new one arrives in the background
    for (let i = 0; i < 100 && p.get() === 'token-1'; i++) await new Promise((r) => setTimeout(r, 20));
    expect(p.get()).toBe('token-2');
    expect(p.refresh()).toBe(false); // a 401 starts a fetch too
    for (let i = 0; i < 100 && p.get() === 'token-2'; i++) await new Promise((r) => setTimeout(r, 20));
    expect(p.get()).toBe('token-3');
  });

  it('a failing plugin is a clear error with its stderr', () => {
    expect(() => parseKubeconfig(kubeconfig({ FAIL: '1', TTL_MS: '1' }), join(dir, 'kubeconfig'))).toThrow(
      /exec plugin .*fake-get-token failed: .*could not get token: AccessDenied/,
    );
  });

  it.each([
    ['not json', 'exec plugin did not print JSON'],
    [JSON.stringify({ kind: 'Other' }), 'exec plugin output is not an ExecCredential'],
    [
      JSON.stringify({ kind: 'ExecCredential', apiVersion: 'client.authentication.k8s.io/v1' }),
      'exec plugin answered client.authentication.k8s.io/v1',
    ],
    [
      JSON.stringify({ kind: 'ExecCredential', apiVersion: V1B1, status: { clientCertificateData: 'x' } }),
      'no status.token',
    ],
    [
      JSON.stringify({
        kind: 'ExecCredential',
        apiVersion: V1B1,
        status: { token: 't', expirationTimestamp: 'soon' },
      }),
      'invalid expirationTimestamp',
    ],
  ])('refuses output %s', (out, why) => {
    expect(() => parseExecCredential(out, V1B1)).toThrow(ExecCredentialError);
    expect(() => parseExecCredential(out, V1B1)).toThrow(why);
  });

  it('a token without expirationTimestamp stays until a 401', () => {
    expect(
      parseExecCredential(
        JSON.stringify({ kind: 'ExecCredential', apiVersion: V1B1, status: { token: 't' } }),
        V1B1,
      ),
    ).toEqual({
      token: 't',
      expiresAt: undefined,
    });
  });
});
