import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/logger.js';
import { createMetrics } from '../../../src/metrics.js';
import { NetfilterError } from '../../../src/netfilter/errors.js';
import { startRuleGuard, type GuardConfig, type RuleGuard } from '../../../src/netfilter/guard.js';
import { fakeIptables } from './fake-iptables.js';

const cfg: GuardConfig = {
  interfaces: ['veth+'],
  listen: '0.0.0.0:8181',
  hostIp: '169.254.100.1',
  hostIpv6: undefined,
  ipv6: false,
  reconcileIntervalMs: 60_000,
  iptablesBackend: 'nft',
};
const logger = createLogger('silent');
let guard: RuleGuard | undefined;
afterEach(async () => {
  await guard?.stop();
  guard = undefined;
});

const setup = () => ({ fake: fakeIptables(), metrics: createMetrics(new Registry(), { defaults: false }) });
const value = async (
  m: { get(): Promise<{ values: { labels: object; value: number }[] }> },
  family = 'ipv4',
) => (await m.get()).values.find((v) => (v.labels as { family?: string }).family === family)?.value ?? 0;

describe('startRuleGuard', () => {
  it('installs both chains and jumps, flushes conntrack, counts no repair', async () => {
    const { fake, metrics } = setup();
    guard = await startRuleGuard(cfg, { logger, metrics, runner: fake });
    expect(fake.state.ipv4.nat.prerouting).toEqual(['-A PREROUTING -j IMDSGATE']);
    expect(fake.state.ipv4.raw.prerouting).toEqual(['-A PREROUTING -j IMDSGATE-ANTISPOOF']);
    expect(fake.state.ipv4.nat.chains.get('IMDSGATE')).toHaveLength(1);
    expect(fake.calls).toContain(
      'conntrack -D -f ipv4 -d 169.254.169.254 -r 169.254.169.254 -p tcp --dport 80 --reply-port-src 80',
    );
    expect(fake.calls.filter((c) => c.startsWith('iptables-nft-restore --noflush -w 5'))).toHaveLength(1);
    expect(await value(metrics.rulesInstalled)).toBe(1);
    expect(await value(metrics.rulesRepairs)).toBe(0);
  });

  it('a pass over intact rules writes nothing', async () => {
    const { fake, metrics } = setup();
    guard = await startRuleGuard(cfg, { logger, metrics, runner: fake });
    const before = fake.calls.length;
    await guard.reconcile();
    expect(fake.calls.slice(before).every((c) => / -S /.test(c))).toBe(true);
  });

  it('restarting over installed rules inserts no second jump', async () => {
    const { fake, metrics } = setup();
    guard = await startRuleGuard(cfg, { logger, metrics, runner: fake });
    await guard.stop();
    guard = await startRuleGuard(cfg, { logger, metrics, runner: fake });
    expect(fake.state.ipv4.nat.prerouting).toEqual(['-A PREROUTING -j IMDSGATE']);
  });

  const drifts: [string, (f: ReturnType<typeof fakeIptables>) => void][] = [
    ['deleted DNAT rule', (f) => f.state.ipv4.nat.chains.set('IMDSGATE', [])],
    [
      'deleted chain and jump',
      (f) => (f.state.ipv4.nat.chains.delete('IMDSGATE'), (f.state.ipv4.nat.prerouting = [])),
    ],
    [
      'altered target',
      (f) => {
        const chain = f.state.ipv4.nat.chains.get('IMDSGATE')!;
        chain[0] = chain[0]!.replace('8181', '9999');
      },
    ],
    ['extra ACCEPT rule in our chain', (f) => f.state.ipv4.nat.chains.get('IMDSGATE')!.unshift('-j ACCEPT')],
    ['deleted anti-spoofing jump', (f) => (f.state.ipv4.raw.prerouting = [])],
  ];
  for (const [name, damage] of drifts) {
    it(`repairs a ${name} and counts it`, async () => {
      const { fake, metrics } = setup();
      guard = await startRuleGuard(cfg, { logger, metrics, runner: fake });
      const good = structuredClone({
        nat: [...fake.state.ipv4.nat.chains.entries()],
        raw: [...fake.state.ipv4.raw.chains.entries()],
        jumps: [fake.state.ipv4.nat.prerouting, fake.state.ipv4.raw.prerouting],
      });
      damage(fake);
      await guard.reconcile();
      expect([...fake.state.ipv4.nat.chains.entries()]).toEqual(good.nat);
      expect([...fake.state.ipv4.raw.chains.entries()]).toEqual(good.raw);
      expect([fake.state.ipv4.nat.prerouting, fake.state.ipv4.raw.prerouting]).toEqual(good.jumps);
      expect(await value(metrics.rulesRepairs)).toBe(1);
      expect(fake.calls.filter((c) => c.startsWith('conntrack -D'))).toHaveLength(2);
    });
  }

  it('the timer repairs without being asked', async () => {
    const { fake, metrics } = setup();
    guard = await startRuleGuard({ ...cfg, reconcileIntervalMs: 200 }, { logger, metrics, runner: fake });
    fake.state.ipv4.nat.prerouting = [];
    await expect.poll(() => fake.state.ipv4.nat.prerouting.length, { timeout: 2000 }).toBe(1);
    expect(await value(metrics.rulesRepairs)).toBe(1);
  });

  it('a failing pass is counted, logged and retried; rules are not reported installed', async () => {
    const { fake, metrics } = setup();
    guard = await startRuleGuard(cfg, { logger, metrics, runner: fake });
    fake.failWhen(/-S PREROUTING/, {
      exitCode: 4,
      stdout: '',
      stderr: 'Another app is currently holding the xtables lock',
    });
    await guard.reconcile();
    expect(await value(metrics.rulesReconcileErrors)).toBe(1);
    expect(await value(metrics.rulesInstalled)).toBe(0);
    const hist = await metrics.rulesReconcileDuration.get();
    expect(hist.values.find((v) => v.metricName?.endsWith('_count'))?.value).toBe(2);
  });

  it('readiness follows the last pass: a failed pass is a problem until a pass succeeds again', async () => {
    const { fake, metrics } = setup();
    guard = await startRuleGuard(cfg, { logger, metrics, runner: fake });
    expect(guard.problems()).toEqual([]);
    expect(await value(metrics.rulesRepairs)).toBe(0); // the series exists before the first repair
    fake.failWhen(/-S PREROUTING/, { exitCode: 4, stdout: '', stderr: 'xtables lock' });
    await guard.reconcile();
    expect(guard.problems()).toEqual([
      expect.stringMatching(/^interception rules \(ipv4\): last reconcile failed/),
    ]);
    fake.heal();
    await guard.reconcile();
    expect(guard.problems()).toEqual([]);
    expect(await value(metrics.rulesInstalled)).toBe(1);
  });

  it('stop() leaves the rules in place', async () => {
    const { fake, metrics } = setup();
    guard = await startRuleGuard(cfg, { logger, metrics, runner: fake });
    const before = fake.calls.length;
    await guard.stop();
    guard = undefined;
    expect(fake.calls.slice(before)).toEqual([]);
    expect(fake.state.ipv4.nat.prerouting).toEqual(['-A PREROUTING -j IMDSGATE']);
  });

  it('installs IPv6 with ip6tables when enabled', async () => {
    const { fake, metrics } = setup();
    guard = await startRuleGuard(
      { ...cfg, listen: '[::]:8181', ipv6: true, hostIpv6: 'fd00::1' },
      { logger, metrics, runner: fake },
    );
    expect(fake.state.ipv6.nat.chains.get('IMDSGATE')![0]).toContain('-d fd00:ec2::254/128');
    expect(fake.calls).toContain(
      'conntrack -D -f ipv6 -d fd00:ec2::254 -r fd00:ec2::254 -p tcp --dport 80 --reply-port-src 80',
    );
    expect(await value(metrics.rulesInstalled, 'ipv6')).toBe(1);
  });
});

describe('errors before anything is written', () => {
  const cases: [string, (f: ReturnType<typeof fakeIptables>) => void, NetfilterError['kind'], RegExp][] = [
    [
      'no CAP_NET_ADMIN (legacy wording)',
      (f) =>
        f.failWhen(/-S PREROUTING/, {
          exitCode: 4,
          stdout: '',
          stderr:
            "iptables v1.8.9 (legacy): can't initialize iptables table `raw': Permission denied (you must be root)",
        }),
      'permission',
      /CAP_NET_ADMIN/,
    ],
    [
      'no CAP_NET_ADMIN (nft wording)',
      (f) =>
        f.failWhen(/-S PREROUTING/, {
          exitCode: 4,
          stdout: '',
          stderr:
            'iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)',
        }),
      'permission',
      /CAP_NET_ADMIN/,
    ],
    [
      'legacy modules missing',
      (f) =>
        f.failWhen(/-S PREROUTING/, {
          exitCode: 3,
          stdout: '',
          stderr:
            "iptables v1.8.9 (legacy): can't initialize iptables table `raw': Table does not exist (do you need to insmod?)",
        }),
      'backend',
      /not usable on this kernel/,
    ],
    [
      'iptables-restore missing',
      (f) => f.missing.add('iptables-nft-restore'),
      'binary',
      /iptables-nft-restore not found/,
    ],
    ['conntrack missing', (f) => f.missing.add('conntrack'), 'binary', /conntrack not found/],
  ];
  for (const [name, arrange, kind, message] of cases) {
    it(name, async () => {
      const { fake, metrics } = setup();
      arrange(fake);
      const err = await startRuleGuard(cfg, { logger, metrics, runner: fake }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NetfilterError);
      expect((err as NetfilterError).kind).toBe(kind);
      expect((err as Error).message).toMatch(message);
      expect(fake.calls.some((c) => c.includes('--noflush'))).toBe(false);
    });
  }

  it('bad interface pattern: nothing is even run', async () => {
    const { fake, metrics } = setup();
    const err = await startRuleGuard(
      { ...cfg, interfaces: ['bad name'] },
      { logger, metrics, runner: fake },
    ).catch((e: unknown) => e);
    expect((err as NetfilterError).kind).toBe('config');
    expect(fake.calls).toEqual([]);
  });
});
