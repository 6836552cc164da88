// The rules and uninstall commands' argument handling; what they do to real iptables is proven in
// test/e2e/rules.test.ts inside network namespaces.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { run as rules } from '../../../src/commands/rules.js';
import { run as uninstall } from '../../../src/commands/uninstall.js';
import { loadConfig } from '../../../src/config.js';

function capture() {
  const out = vi.spyOn(process.stdout, 'write').mockReturnValue(true);
  const err = vi.spyOn(process.stderr, 'write').mockReturnValue(true);
  return {
    out: () => out.mock.calls.map((c) => String(c[0])).join(''),
    err: () => err.mock.calls.map((c) => String(c[0])).join(''),
  };
}
afterEach(() => vi.restoreAllMocks());

describe('imdsgate rules', () => {
  it('--print writes the restore input per family and needs no --node-name', async () => {
    const io = capture();
    expect(
      await rules([
        '--print',
        '--listen=[::]:8181',
        '--host-ip',
        '169.254.100.1',
        '--ipv6',
        '--host-ipv6',
        'fd00::1',
      ]),
    ).toBe(0);
    expect(io.out()).toMatch(/^# ipv4: iptables-restore --noflush -w 5 \(first install\)\n\*raw\n/);
    expect(io.out()).toContain('# ipv6: ip6tables-restore');
    expect(io.out()).toContain('--to-destination [fd00::1]:8181');
  });

  const usage: [string, string[], number, RegExp][] = [
    ['neither --print nor --apply', [], 2, /give exactly one of --print or --apply/],
    ['both', ['--print', '--apply'], 2, /give exactly one/],
    ['an unknown flag', ['--print', '--bogus'], 2, /invalid configuration/],
    ['no address to DNAT to', ['--print'], 2, /--host-ip is required/],
    [
      'bad interface pattern',
      ['--print', '--host-ip=169.254.1.1', '--interfaces=a b'],
      2,
      /not an interface name/,
    ],
  ];
  for (const [name, argv, code, message] of usage) {
    it(`${name}: exit ${code}`, async () => {
      const io = capture();
      expect(await rules(argv)).toBe(code);
      expect(io.err()).toMatch(message);
    });
  }

  it('--help lists the flags', async () => {
    const io = capture();
    expect(await rules(['--help'])).toBe(0);
    expect(io.out()).toContain('--iptables-backend');
  });
});

describe('imdsgate uninstall', () => {
  it('--help explains what is removed', async () => {
    const io = capture();
    expect(await uninstall(['--help'])).toBe(0);
    expect(io.out()).toContain('IMDSGATE-ANTISPOOF');
  });
  it('a bad flag is a usage error before anything runs', async () => {
    const io = capture();
    expect(await uninstall(['--iptables-backend=iptables'])).toBe(2);
    expect(io.err()).toMatch(/--iptables-backend/);
  });
});

describe('loadConfig for netfilter-only commands', () => {
  it('serve still needs --node-name or --identity-file', () => {
    expect(() => loadConfig([], {})).toThrow(/--node-name/);
  });
  it('rules and uninstall do not', () => {
    expect(loadConfig(['--host-ip=169.254.100.1'], {}, { command: 'rules' }).iptablesBackend).toBe('auto');
    expect(loadConfig([], {}, { command: 'uninstall' }).interfaces).toEqual([
      'eni+',
      'cali+',
      'lxc+',
      'veth+',
      'cni0',
    ]);
  });
});
