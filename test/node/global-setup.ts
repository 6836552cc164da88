// vitest globalSetup of the node project: brings the node test bed up fresh (test/node/up: kubelet,
// containerd, CNI bridge, controller-manager and scheduler in namespaces of its own; it brings test/env up
// first). Fresh, because the first test proves the node registers with the startup taint; set
// IMDSGATE_NODE_REUSE=1 to keep a bed that is already up. Tears it down afterwards unless
// IMDSGATE_TESTENV_KEEP=1. A bed that cannot come up fails the run: nothing is skipped.
import { execa } from 'execa';
import { join } from 'node:path';
import { REPO_ROOT } from '../env/index.js';

const script = (name: string) => join(REPO_ROOT, 'test/node', name);

export default async function setup(): Promise<() => Promise<void>> {
  const reuse = process.env.IMDSGATE_NODE_REUSE === '1';
  if (!reuse) await execa('bash', [script('down')], { stdout: 'inherit', stderr: 'inherit' });
  const r = await execa('bash', [script('up')], { reject: false, stdout: 'inherit', stderr: 'inherit' });
  if (r.exitCode !== 0)
    throw new Error(`node test bed failed to come up (test/node/up exited ${r.exitCode})`);
  return async () => {
    if (process.env.IMDSGATE_TESTENV_KEEP === '1') return;
    await execa('bash', [script('down')], { stdout: 'inherit', stderr: 'inherit' });
  };
}
