// `helm uninstall` leaves no imdsgate rules on the node: each agent watches its own DaemonSet and removes
// its rules when it has seen it deleted (uninstall.removeRules; src/kube/daemonset-watch.ts). A plain
// restart of the agent pod keeps them (fail closed).
import { describe, expect, it } from 'vitest';
import { helm, kubectl, nodeRules, until } from './bed.js';
import { agentReadySince, installChart, RELEASE, RELEASE_NS } from './release.js';

describe('uninstall', () => {
  it('deleting the agent pod (a restart) keeps the rules', async () => {
    await installChart();
    const deleted = Date.now();
    await kubectl([
      'delete',
      'pod',
      '-n',
      RELEASE_NS,
      '-l',
      'app.kubernetes.io/name=imdsgate',
      '--timeout=60s',
    ]);
    expect(await nodeRules()).toContain('IMDSGATE');
    await until('agent back', 120_000, () => agentReadySince(deleted));
  });

  it('helm uninstall removes every imdsgate rule from the node', async () => {
    expect(await nodeRules()).toContain('IMDSGATE');
    const r = await helm(['uninstall', RELEASE, '--namespace', RELEASE_NS, '--wait', '--timeout', '120s']);
    expect(r.code, r.out).toBe(0);
    const left = await until('rules gone', 60_000, async () => {
      const rules = await nodeRules();
      return rules.includes('IMDSGATE') ? undefined : rules;
    });
    expect(left).not.toContain('169.254.169.254');
  });
});
