// The node's addresses per family from --host-ip, --host-ipv6 and --host-ips (Downward API status.hostIP
// and status.hostIPs), and what the configuration makes of them (issue 12 point 5).
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { parseHostPort } from '../../src/host-port.js';
import { resolveHostAddresses, type HostAddresses } from '../../src/ip.js';

describe('resolveHostAddresses', () => {
  it.each([
    ['nothing', {}, {}],
    ['IPv4 --host-ip', { hostIp: '169.254.100.1' }, { hostIp: '169.254.100.1' }],
    ['IPv6 --host-ip (IPv6-only node)', { hostIp: 'fd00:100::1' }, { hostIpv6: 'fd00:100::1' }],
    [
      'IPv6-only status.hostIPs',
      { hostIp: 'fd00:100::1', hostIps: ['fd00:100::1'] },
      { hostIpv6: 'fd00:100::1' },
    ],
    [
      'dual-stack, IPv4 primary',
      { hostIp: '169.254.100.1', hostIps: ['169.254.100.1', 'fd00:100::1'] },
      { hostIp: '169.254.100.1', hostIpv6: 'fd00:100::1' },
    ],
    [
      'dual-stack, IPv6 primary',
      { hostIp: 'fd00:100::1', hostIps: ['fd00:100::1', '169.254.100.1'] },
      { hostIp: '169.254.100.1', hostIpv6: 'fd00:100::1' },
    ],
    [
      '--host-ipv6 wins over the list',
      { hostIpv6: 'fd00:100::2', hostIps: ['fd00:100::1'] },
      { hostIpv6: 'fd00:100::2' },
    ],
    [
      'the same address spelled twice',
      { hostIp: 'FD00:100::1', hostIpv6: 'fd00:100:0::1' },
      { hostIpv6: 'fd00:100::1' },
    ],
  ] as [string, HostAddresses, object][])('%s', (_name, input, want) => {
    expect(resolveHostAddresses(input)).toEqual({ ...want, problems: [] });
  });

  it('lists every problem', () => {
    expect(
      resolveHostAddresses({
        hostIp: 'fd00:100::1',
        hostIpv6: 'fd00:100::2',
        hostIps: ['node', '169.254.1.1', '169.254.1.2'],
      }).problems,
    ).toEqual([
      '--host-ip / --host-ipv6: fd00:100::1 and fd00:100::2 are two ipv6 node addresses; give one',
      '--host-ips: "node" is not an IP address',
      '--host-ips: more than one ipv4 address',
    ]);
  });
});

describe('bracketed listen hosts', () => {
  it.each([
    ['[169.254.100.1]:8181', { host: '169.254.100.1', port: 8181 }],
    ['[fd00:100::1]:8181', { host: 'fd00:100::1', port: 8181 }],
    ['[::g]:8181', { problem: 'must be HOST:PORT (IPv6 as [addr]:port)' }],
    ['[1:2:3]:8181', { problem: 'only an IP address goes in brackets' }],
    ['fd00::1:8181', { problem: 'must be HOST:PORT (IPv6 as [addr]:port)' }],
  ])('%s', (value, want) => expect(parseHostPort(value)).toEqual(want));
});

describe("loadConfig with the chart's Downward API variables", () => {
  const load = (env: Record<string, string>) => loadConfig(['--node-name=n1'], env);

  it('an IPv6-only node: IPv6 host IP, bracketed listen, starts', () => {
    const cfg = load({
      IMDSGATE_HOST_IP: 'fd00:100::1',
      IMDSGATE_HOST_IPS: 'fd00:100::1',
      IMDSGATE_LISTEN: '[fd00:100::1]:8181',
    });
    expect([cfg.hostIp, cfg.hostIpv6]).toEqual([undefined, 'fd00:100::1']);
  });

  it('a dual-stack node: both families picked, IPv6 off unless asked', () => {
    const cfg = load({
      IMDSGATE_HOST_IP: '169.254.100.1',
      IMDSGATE_HOST_IPS: '169.254.100.1,fd00:100::1',
      IMDSGATE_LISTEN: '[169.254.100.1]:8181',
    });
    expect([cfg.hostIp, cfg.hostIpv6, cfg.ipv6]).toEqual(['169.254.100.1', 'fd00:100::1', false]);
  });

  it('every problem listed, exit 2 before any port opens', () => {
    let caught: unknown;
    try {
      load({
        IMDSGATE_HOST_IP: '169.254.100.1',
        IMDSGATE_HOST_IPS: '169.254.100.1,fd00:100::1,bogus',
        IMDSGATE_LISTEN: '[169.254.100.1]:8181',
        IMDSGATE_IPV6: 'true',
      });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).problems).toEqual([
      '--host-ips: "bogus" is not an IP address',
      expect.stringMatching(/--listen \[169.254.100.1\]:8181 receives no ipv6 traffic/),
    ]);
  });
});
