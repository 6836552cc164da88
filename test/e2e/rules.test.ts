// The rule lifecycle against the real iptables binaries and kernel, once per backend, inside a network
// namespace of its own: install, idempotence, drift repair within 5 s, stop leaves rules, uninstall,
// permission error. The full request path through these rules is in sandbox.test.ts.
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { createMetrics } from '../../src/metrics.js';
import { startRuleGuard, type GuardConfig, type RuleGuard } from '../../src/netfilter/guard.js';
import { desiredRules, expectedListing } from '../../src/netfilter/render.js';
import { CLI, cliIn, requireBuild } from './sandbox/cli.js';
import {
  createNetns,
  deleteNetns,
  inNetns,
  mustInNetns,
  netnsName,
  netnsRunner,
  reapStale,
} from './sandbox/netns.js';

const HOST = '169.254.100.1';
// [::]: the agent must listen where both families' DNAT points (netfilter/render.ts dnatTarget).
const flags = [
  '--listen=[::]:8181',
  '--host-ip',
  HOST,
  '--ipv6',
  '--host-ipv6',
  'fd00:ec2:1::1',
  '--interfaces',
  'veth+,cni0',
];

for (const backend of ['nft', 'legacy'] as const) {
  describe(`rule lifecycle with iptables-${backend}`, () => {
    const ns = netnsName(`rules${backend[0]}`);
    const cfg: GuardConfig = {
      interfaces: ['veth+', 'cni0'],
      listen: '[::]:8181',
      hostIp: HOST,
      hostIpv6: 'fd00:ec2:1::1',
      ipv6: true,
      reconcileIntervalMs: 500,
      iptablesBackend: backend,
    };
    const [v4, v6] = desiredRules(cfg);
    const ipt = (family: 'ipv4' | 'ipv6', args: string[]) =>
      mustInNetns(ns, `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${backend}`, ['-w', '5', ...args]);
    const listing = async (family: 'ipv4' | 'ipv6', table: string, chain: string) =>
      (await ipt(family, ['-t', table, '-S', chain])).trim().split('\n');
    const save = async () =>
      (await mustInNetns(ns, `iptables-${backend}-save`, [])) +
      (await mustInNetns(ns, `ip6tables-${backend}-save`, []));
    let guard: RuleGuard | undefined;
    const metrics = createMetrics(new Registry(), { defaults: false });

    beforeAll(async () => {
      requireBuild();
      await reapStale();
      await createNetns(ns);
    });
    afterAll(async () => {
      await guard?.stop();
      await deleteNetns(ns);
    });

    it('rules --print changes nothing', async () => {
      const r = await cliIn(ns, ['rules', '--print', ...flags, `--iptables-backend=${backend}`]);
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain('-I PREROUTING 1 -j IMDSGATE');
      expect(await save()).not.toContain('IMDSGATE');
    });

    it('without CAP_NET_ADMIN: clear error, exit 1, nothing written', async () => {
      const r = await inNetns(ns, 'setpriv', [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        '--inh-caps=-all',
        process.execPath,
        CLI,
        'rules',
        '--apply',
        ...flags,
        `--iptables-backend=${backend}`,
      ]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/permission denied; imdsgate needs CAP_NET_ADMIN/);
      expect(await save()).not.toContain('IMDSGATE');
    });

    it('the guard installs exactly the rendered rules, both families', async () => {
      guard = await startRuleGuard(cfg, { logger: createLogger('silent'), metrics, runner: netnsRunner(ns) });
      expect(await listing('ipv4', 'nat', 'IMDSGATE')).toEqual(expectedListing(v4!, 'nat'));
      expect(await listing('ipv4', 'raw', 'IMDSGATE-ANTISPOOF')).toEqual(expectedListing(v4!, 'raw'));
      expect(await listing('ipv6', 'nat', 'IMDSGATE')).toEqual(expectedListing(v6!, 'nat'));
      expect(await listing('ipv6', 'raw', 'IMDSGATE-ANTISPOOF')).toEqual(expectedListing(v6!, 'raw'));
      expect(await listing('ipv4', 'nat', 'PREROUTING')).toContain('-A PREROUTING -j IMDSGATE');
    });

    it('real listings compare equal to the desired ones: intact passes repair nothing', async () => {
      await guard!.reconcile();
      await guard!.reconcile();
      expect(await count(metrics.rulesRepairs)).toBe(0);
      expect(await count(metrics.rulesReconcileErrors)).toBe(0);
    });

    it('rules --apply again is idempotent: one jump each', async () => {
      const r = await cliIn(ns, [
        'rules',
        '--apply',
        ...flags,
        `--iptables-backend=${backend}`,
        '--log-level=warn',
      ]);
      expect(r.exitCode, r.stderr).toBe(0);
      const pre = await listing('ipv4', 'nat', 'PREROUTING');
      expect(pre.filter((l) => l === '-A PREROUTING -j IMDSGATE')).toHaveLength(1);
    });

    const damages: [string, () => Promise<unknown>][] = [
      ['deleted DNAT rule', () => ipt('ipv4', ['-t', 'nat', '-D', 'IMDSGATE', '1'])],
      ['deleted PREROUTING jump', () => ipt('ipv4', ['-t', 'nat', '-D', 'PREROUTING', '-j', 'IMDSGATE'])],
      ['flushed anti-spoofing chain', () => ipt('ipv4', ['-t', 'raw', '-F', 'IMDSGATE-ANTISPOOF'])],
      [
        'ACCEPT inserted ahead of the DNAT',
        () => ipt('ipv4', ['-t', 'nat', '-I', 'IMDSGATE', '1', '-d', '169.254.169.254/32', '-j', 'ACCEPT']),
      ],
      ['deleted IPv6 DNAT rule', () => ipt('ipv6', ['-t', 'nat', '-D', 'IMDSGATE', '2'])],
    ];
    for (const [name, damage] of damages) {
      it(`repairs a ${name} within 5 s`, async () => {
        const before = await count(metrics.rulesRepairs);
        await damage();
        const t0 = Date.now();
        await expect
          .poll(
            async () =>
              JSON.stringify([
                await listing('ipv4', 'nat', 'IMDSGATE'),
                await listing('ipv4', 'raw', 'IMDSGATE-ANTISPOOF'),
                await listing('ipv6', 'nat', 'IMDSGATE'),
                (await listing('ipv4', 'nat', 'PREROUTING')).includes('-A PREROUTING -j IMDSGATE'),
              ]),
            { timeout: 5000, interval: 100 },
          )
          .toBe(
            JSON.stringify([
              expectedListing(v4!, 'nat'),
              expectedListing(v4!, 'raw'),
              expectedListing(v6!, 'nat'),
              true,
            ]),
          );
        expect(Date.now() - t0).toBeLessThan(5000);
        expect(await count(metrics.rulesRepairs)).toBe(before + 1);
      });
    }

    it('stop() leaves the rules in place', async () => {
      await guard!.stop();
      guard = undefined;
      expect(await listing('ipv4', 'nat', 'IMDSGATE')).toEqual(expectedListing(v4!, 'nat'));
    });

    it('uninstall removes chains and jumps of both families', async () => {
      const r = await cliIn(ns, ['uninstall', `--iptables-backend=${backend}`]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toMatch(new RegExp(`removed rules from ${backend}/ipv4, ${backend}/ipv6`));
      expect(await save()).not.toContain('IMDSGATE');
      const again = await cliIn(ns, ['uninstall']);
      expect(again.stderr).toContain('no imdsgate rules found');
    });
  });
}

async function count(m: { get(): Promise<{ values: { value: number }[] }> }): Promise<number> {
  return (await m.get()).values.reduce((a, v) => a + v.value, 0);
}

describe('backend auto-detection (kubelet hint chains, as kube-proxy)', () => {
  for (const [hinted, other] of [
    ['legacy', 'nft'],
    ['nft', 'legacy'],
  ] as const) {
    it(`installs into ${hinted} when kubelet's hint chain is there`, async () => {
      const ns = await createNetns(netnsName(`auto${hinted[0]}`));
      try {
        await mustInNetns(ns, `iptables-${hinted}`, ['-w', '5', '-t', 'mangle', '-N', 'KUBE-IPTABLES-HINT']);
        const r = await cliIn(ns, ['rules', '--apply', ...flags, '--log-level=info']);
        expect(r.exitCode, r.stderr).toBe(0);
        expect(r.stderr).toContain(`"reason":"kubelet hint chains found in ${hinted}"`);
        expect(await mustInNetns(ns, `iptables-${hinted}-save`, ['-t', 'nat'])).toContain('-j IMDSGATE');
        expect(await mustInNetns(ns, `iptables-${other}-save`, ['-t', 'nat'])).not.toContain('IMDSGATE');
      } finally {
        await deleteNetns(ns);
      }
    });
  }
});
