// `imdsgate explain` against the real apiserver: prints every input and exits 0 on allow, 1 on deny.
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../../src/commands/explain.js';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse } from 'yaml';
import {
  AGENT_RULES,
  agentKubeconfig,
  createPod,
  deleteNamespace,
  ensureNamespace,
  envState,
} from './support.js';

const NS = `ide-${randomBytes(3).toString('hex')}`;
const capture = () => {
  let text = '';
  return {
    stream: { write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream,
    text: () => text,
  };
};

afterAll(() => deleteNamespace(NS));

describe('imdsgate explain', () => {
  it('allow: exit 0, shows the annotations, config and rules', async () => {
    await ensureNamespace(NS, { 'iam.amazonaws.com/permitted': 'app' });
    await createPod({
      namespace: NS,
      name: 'p',
      nodeName: 'n',
      annotations: { 'iam.amazonaws.com/role': 'app' },
      ips: ['169.254.77.1'],
    });
    const out = capture();
    const args = [
      '--namespace',
      NS,
      '--pod',
      'p',
      '--kubeconfig',
      envState().kube.adminKubeconfig,
      '--base-role-arn',
      'arn:aws:iam::123456789012:role/',
    ];
    expect(await run(args, out.stream, out.stream)).toBe(0);
    expect(out.text()).toContain('"iam.amazonaws.com/role":"app"');
    expect(out.text()).toContain('iam.amazonaws.com/permitted (regexp): app');
    expect(out.text()).toContain('decision: ALLOW arn:aws:iam::123456789012:role/app');
  });

  it('deny: exit 1 with the typed reason; usage error: exit 2', async () => {
    await createPod({
      namespace: NS,
      name: 'q',
      nodeName: 'n',
      annotations: { 'iam.amazonaws.com/role': 'admin' },
    });
    const out = capture();
    const args = [
      '--namespace',
      NS,
      '--pod',
      'q',
      '--kubeconfig',
      envState().kube.adminKubeconfig,
      '--base-role-arn',
      'arn:aws:iam::123456789012:role/',
    ];
    expect(await run(args, out.stream, out.stream)).toBe(1);
    expect(out.text()).toContain('decision: DENY namespace_forbids');
    expect(await run(['--pod', 'q'], out.stream, out.stream)).toBe(2);
  });

  it('an exec-plugin kubeconfig (as `aws eks get-token` writes): the plugin token reaches the API server', async () => {
    // The plugin prints a least-privilege ServiceAccount's token as an ExecCredential.
    const plain = await agentKubeconfig(`imdsgate-explain-exec-${NS}`, AGENT_RULES);
    const doc = parse(readFileSync(plain, 'utf8')) as {
      clusters: { cluster: { server: string; 'certificate-authority': string } }[];
      users: { user: { token: string } }[];
    };
    const dir = mkdtempSync(join(tmpdir(), 'imdsgate-explain-exec-'));
    const plugin = join(dir, 'get-token');
    const credential = {
      apiVersion: 'client.authentication.k8s.io/v1beta1',
      kind: 'ExecCredential',
      status: {
        token: doc.users[0]!.user.token,
        expirationTimestamp: new Date(Date.now() + 600_000).toISOString(),
      },
    };
    writeFileSync(plugin, `#!/bin/sh\ncat <<'EOF'\n${JSON.stringify(credential)}\nEOF\n`);
    chmodSync(plugin, 0o755);
    const kubeconfig = join(dirname(plugin), 'kubeconfig');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        clusters: [{ name: 'c', cluster: doc.clusters[0]!.cluster }],
        users: [
          {
            name: 'eks',
            user: {
              exec: { apiVersion: 'client.authentication.k8s.io/v1beta1', command: './get-token', args: [] },
            },
          },
        ],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'eks' } }],
        'current-context': 'x',
      }),
    );
    const out = capture();
    const args = [
      '--namespace',
      NS,
      '--pod',
      'p',
      '--kubeconfig',
      kubeconfig,
      '--base-role-arn',
      'arn:aws:iam::123456789012:role/',
    ];
    expect(await run(args, out.stream, out.stream)).toBe(0);
    expect(out.text()).toContain('decision: ALLOW arn:aws:iam::123456789012:role/app');
  });
});
