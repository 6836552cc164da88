import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/logger.js';
import { chooseBackend, detectBackend, type BackendEvidence } from '../../../src/netfilter/backend.js';
import { NetfilterError } from '../../../src/netfilter/errors.js';
import { classify, execaRunner, type CommandRunner } from '../../../src/netfilter/runner.js';

const both = { nft: true, legacy: true };
const none = { nft: 0, legacy: 0 };

describe('chooseBackend (iptables-wrappers order)', () => {
  const cases: [string, BackendEvidence, 'nft' | 'legacy'][] = [
    ['empty node: tie goes to nft', { available: both, hints: none, rules: none }, 'nft'],
    [
      'kubelet hint in nft wins over more legacy rules',
      { available: both, hints: { nft: 1, legacy: 0 }, rules: { nft: 0, legacy: 50 } },
      'nft',
    ],
    [
      'kubelet hint in legacy',
      { available: both, hints: { nft: 0, legacy: 2 }, rules: { nft: 9, legacy: 0 } },
      'legacy',
    ],
    [
      'no hints, more legacy rules',
      { available: both, hints: none, rules: { nft: 3, legacy: 40 } },
      'legacy',
    ],
    ['no hints, more nft rules', { available: both, hints: none, rules: { nft: 40, legacy: 3 } }, 'nft'],
    ['only nft installed', { available: { nft: true, legacy: false }, hints: none, rules: none }, 'nft'],
    [
      'only legacy installed',
      { available: { nft: false, legacy: true }, hints: none, rules: none },
      'legacy',
    ],
  ];
  for (const [name, evidence, want] of cases) {
    it(name, () => expect(chooseBackend(evidence).backend).toBe(want));
  }
  it('nothing installed is a clear error', () => {
    expect(() =>
      chooseBackend({ available: { nft: false, legacy: false }, hints: none, rules: none }),
    ).toThrow(/neither iptables-nft-save nor iptables-legacy-save/);
  });
});

describe('detectBackend', () => {
  const saves: Record<string, string> = {
    'iptables-nft-save': '*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n',
    'ip6tables-nft-save': '',
    'iptables-legacy-save':
      '*nat\n-A PREROUTING -j A\n-A PREROUTING -j B\nCOMMIT\n*mangle\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n',
    'ip6tables-legacy-save': '*nat\n-A PREROUTING -j C\nCOMMIT\n',
  };
  const runner: CommandRunner = {
    run: async (file) => ({ exitCode: 0, stdout: saves[file] ?? '', stderr: '' }),
  };
  it('reads IPv4 and IPv6 of both backends and follows the kubelet hint', async () => {
    expect(await detectBackend(runner, createLogger('silent'))).toBe('legacy');
  });
  it('a backend whose save binary is missing is not chosen', async () => {
    const noLegacy: CommandRunner = {
      run: async (file, args) => {
        if (file.includes('legacy')) throw new NetfilterError('binary', `${file} not found`);
        return runner.run(file, args);
      },
    };
    expect(await detectBackend(noLegacy, createLogger('silent'))).toBe('nft');
  });
});

describe('classify', () => {
  const cases: [string, string, NetfilterError['kind']][] = [
    [
      'iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)',
      '',
      'permission',
    ],
    [
      "iptables v1.8.9 (legacy): can't initialize iptables table `nat': Permission denied (you must be root)",
      '',
      'permission',
    ],
    ['Operation failed: Operation not permitted', '', 'permission'],
    ["can't initialize iptables table `nat': Table does not exist (do you need to insmod?)", '', 'backend'],
    ['iptables-restore: line 3 failed', '', 'apply'],
  ];
  for (const [stderr, stdout, kind] of cases) {
    it(`${kind}: ${stderr.slice(0, 50)}`, () => {
      const err = classify('iptables-nft', ['-S'], { exitCode: 4, stdout, stderr });
      expect(err.kind).toBe(kind);
      expect(err.message).toContain('iptables-nft -S');
    });
  }
});

describe('execaRunner', () => {
  it('a missing binary is a binary error naming the package', async () => {
    const err = await execaRunner()
      .run('iptables-imdsgate-does-not-exist', [])
      .catch((e: unknown) => e);
    expect((err as NetfilterError).kind).toBe('binary');
    expect((err as Error).message).toMatch(/not found in PATH: the image needs the iptables package/);
  });
  it('returns exit code, stdout and stderr without throwing, and passes input', async () => {
    const r = await execaRunner().run('sh', ['-c', 'cat; echo oops >&2; exit 3'], 'in');
    expect(r).toEqual({ exitCode: 3, stdout: 'in', stderr: 'oops' });
  });
});
