import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  KubeconfigError,
  fileToken,
  fromCluster,
  fromKubeconfigFile,
  parseKubeconfig,
} from '../../../src/kube/kubeconfig.js';

const dir = mkdtempSync(join(tmpdir(), 'imdsgate-kubeconfig-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

const b64 = (s: string) => Buffer.from(s).toString('base64');
const cfg = (cluster: object, user: object = {}, extra: object = {}) =>
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:6443', ...cluster } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'x',
    ...extra,
  });

describe('parseKubeconfig', () => {
  it('reads inline data, prefers -data over paths, and resolves paths against the file directory', () => {
    file('ca.pem', 'CA FROM FILE');
    const t = parseKubeconfig(
      cfg(
        { 'certificate-authority': 'ca.pem' },
        {
          'client-certificate-data': b64('CERT'),
          'client-certificate': 'nope.pem',
          'client-key-data': b64('KEY'),
        },
      ),
      join(dir, 'kubeconfig'),
    );
    expect(t.server).toBe('https://127.0.0.1:6443');
    expect(t.ca?.toString()).toBe('CA FROM FILE');
    expect(t.cert?.toString()).toBe('CERT');
    expect(t.key?.toString()).toBe('KEY');
    expect(t.insecureSkipTlsVerify).toBe(false);
    expect(t.token).toBeUndefined();
  });

  it('bearer token, tokenFile, insecure-skip-tls-verify, tls-server-name and a trailing slash', () => {
    file('tok', 'from-file\n');
    const a = parseKubeconfig(
      cfg(
        { server: 'https://h:1/prefix/', 'insecure-skip-tls-verify': true, 'tls-server-name': 'api' },
        {
          token: 'abc',
        },
      ),
      join(dir, 'k'),
    );
    expect(a.token?.get()).toBe('abc');
    expect(a.insecureSkipTlsVerify).toBe(true);
    expect(a.tlsServerName).toBe('api');
    expect(a.server).toBe('https://h:1/prefix');
    const b = parseKubeconfig(cfg({}, { tokenFile: 'tok' }), join(dir, 'k'));
    expect(b.token?.get()).toBe('from-file');
  });

  it.each([
    ['not YAML', '{: [', /not valid YAML/],
    ['not a mapping', '42', /not a kubeconfig/],
    ['no current-context', cfg({}, {}, { 'current-context': '' }), /current-context is not set/],
    ['unknown context', cfg({}, {}, { 'current-context': 'y' }), /context "y" not found/],
    [
      'unknown cluster',
      cfg({}, {}, { contexts: [{ name: 'x', context: { cluster: 'gone', user: 'u' } }] }),
      /cluster "gone" not found/,
    ],
    [
      'unknown user',
      cfg({}, {}, { contexts: [{ name: 'x', context: { cluster: 'c', user: 'who' } }] }),
      /user "who" not found/,
    ],
    ['exec without apiVersion', cfg({}, { exec: { command: 'aws' } }), /exec.apiVersion must be/],
    [
      'exec plugin that is not there',
      cfg({}, { exec: { apiVersion: 'client.authentication.k8s.io/v1beta1', command: './no-such-plugin' } }),
      /exec plugin .*no-such-plugin failed/,
    ],
    ['auth-provider', cfg({}, { 'auth-provider': { name: 'gcp' } }), /uses auth-provider/],
    ['no server', cfg({ server: '' }), /server must be an http\(s\) URL/],
    ['bad server', cfg({ server: 'ftp://x' }), /server must be an http\(s\) URL/],
    ['cert without key', cfg({}, { 'client-certificate-data': b64('C') }), /needs both client-certificate/],
    [
      'missing CA file',
      cfg({ 'certificate-authority': 'missing.pem' }),
      /cannot read .*certificate-authority/,
    ],
    ['missing token file', cfg({}, { tokenFile: 'missing' }), /cannot read token file/],
  ])('refuses %s with a clear KubeconfigError', (_name, text, msg) => {
    expect(() => parseKubeconfig(text, join(dir, 'bad'))).toThrow(KubeconfigError);
    expect(() => parseKubeconfig(text, join(dir, 'bad'))).toThrow(msg);
  });

  it('fromKubeconfigFile: an unreadable file is a KubeconfigError naming it', () => {
    expect(() => fromKubeconfigFile(join(dir, 'absent'))).toThrow(/cannot read kubeconfig .*absent/);
    expect(fromKubeconfigFile(file('ok.yaml', cfg({}, { token: 't' }))).token?.get()).toBe('t');
  });
});

describe('fileToken', () => {
  it('re-reads the file once the refresh interval has passed (bound tokens rotate)', () => {
    let now = 0;
    const p = file('rotating', 'one');
    const t = fileToken(p, 60_000, () => now);
    writeFileSync(p, 'two');
    expect(t.get()).toBe('one');
    now = 60_000;
    expect(t.get()).toBe('two');
  });

  it('refresh() reports a change; a failed or empty re-read keeps the last good token', () => {
    const p = file('rot2', 'one');
    const t = fileToken(p, 60_000, () => 0);
    expect(t.refresh()).toBe(false);
    writeFileSync(p, 'two\n');
    expect(t.refresh()).toBe(true);
    writeFileSync(p, '');
    expect(t.refresh()).toBe(false);
    rmSync(p);
    expect(t.refresh()).toBe(false);
    expect(t.get()).toBe('two');
  });

  it('an empty token file at start is an error', () => {
    expect(() => fileToken(file('empty', '  \n'))).toThrow(/is empty/);
  });
});

describe('fromCluster', () => {
  const sa = mkdtempSync(join(dir, 'sa-'));
  writeFileSync(join(sa, 'token'), 'sa-token');
  writeFileSync(join(sa, 'ca.crt'), 'CA');

  it('uses KUBERNETES_SERVICE_HOST/PORT, the mounted CA and token; brackets IPv6', () => {
    const t = fromCluster({ KUBERNETES_SERVICE_HOST: '169.254.240.1', KUBERNETES_SERVICE_PORT: '443' }, sa);
    expect(t.server).toBe('https://169.254.240.1:443');
    expect(t.ca?.toString()).toBe('CA');
    expect(t.token?.get()).toBe('sa-token');
    const v6 = fromCluster({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, sa);
    expect(v6.server).toBe('https://[fd00::1]:443');
  });

  it('outside a cluster, or without the mounted files, says what is missing', () => {
    expect(() => fromCluster({}, sa)).toThrow(/not running in a cluster.*--kubeconfig/);
    const env = { KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: '1' };
    expect(() => fromCluster(env, join(dir, 'nowhere'))).toThrow(/service-account CA/);
    const noToken = mkdtempSync(join(dir, 'sa-'));
    writeFileSync(join(noToken, 'ca.crt'), 'CA');
    expect(() => fromCluster(env, noToken)).toThrow(/cannot read token file/);
  });
});
