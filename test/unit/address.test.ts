// The one IP module and the one HOST:PORT module (src/ip.ts, src/host-port.ts), and their users agree.
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { hostPort, parseHostPort } from '../../src/host-port.js';
import {
  canonicalIp,
  canonicalIpv6,
  ipFamily,
  isLoopback,
  isUnspecified,
  normalizeIp,
} from '../../src/ip.js';
import { dnatTarget } from '../../src/netfilter/render.js';

describe('HOST:PORT', () => {
  it.each([
    ['0.0.0.0:8181', { host: '0.0.0.0', port: 8181 }],
    ['[::]:8181', { host: '::', port: 8181 }],
    ['[fd00:ec2::1]:80', { host: 'fd00:ec2::1', port: 80 }],
    ['localhost:0', { host: 'localhost', port: 0 }],
    ['127.0.0.1:65535', { host: '127.0.0.1', port: 65535 }],
    ['127.0.0.1:65536', { problem: 'port must be 0-65535' }],
    ['::1:80', { problem: 'must be HOST:PORT (IPv6 as [addr]:port)' }],
    ['nonsense', { problem: 'must be HOST:PORT (IPv6 as [addr]:port)' }],
    [':80', { problem: 'must be HOST:PORT (IPv6 as [addr]:port)' }],
    ['host:', { problem: 'must be HOST:PORT (IPv6 as [addr]:port)' }],
  ])('%s', (value, want) => {
    expect(parseHostPort(value)).toEqual(want);
    const flag = () =>
      loadConfig(['--identity-file=/x', `--listen=${value}`], { IMDSGATE_MANAGE_RULES: 'false' });
    if ('problem' in want) {
      expect(flag).toThrow(want.problem);
      expect(() => hostPort(value)).toThrow(want.problem);
    } else {
      expect(flag().listen).toBe(value);
      expect(hostPort(value)).toEqual(want);
    }
  });

  it('the DNAT target takes the listen port and, for an address, its host', () => {
    expect(dnatTarget('ipv4', { interfaces: [], listen: '169.254.100.1:8181', ipv6: false })).toBe(
      '169.254.100.1:8181',
    );
    expect(dnatTarget('ipv6', { interfaces: [], listen: '[FD00:100:0::1]:8181', ipv6: true })).toBe(
      '[fd00:100::1]:8181',
    );
  });
});

describe('IP addresses', () => {
  it.each([
    ['10.0.0.5', 'ipv4', '10.0.0.5'],
    ['FD00:EC2:0::254', 'ipv6', 'fd00:ec2::254'],
    ['[fd00::1]', undefined, 'fd00::1'],
    ['::ffff:10.0.0.5', 'ipv6', '10.0.0.5'],
    ['10.0.0.256', undefined, undefined],
    ['pod', undefined, undefined],
  ])('%s: family %s, canonical %s', (addr, family, canonical) => {
    expect(ipFamily(addr)).toBe(family);
    expect(canonicalIp(addr)).toBe(canonical);
  });

  it('classifies and normalizes', () => {
    expect(canonicalIpv6('0:0:0:0:0:0:0:1')).toBe('::1');
    expect(canonicalIpv6('10.0.0.1')).toBe('10.0.0.1');
    expect([isUnspecified('0.0.0.0'), isUnspecified('0::0'), isUnspecified('10.0.0.1')]).toEqual([
      true,
      true,
      false,
    ]);
    expect([isLoopback('127.0.0.2'), isLoopback('0:0::1'), isLoopback('169.254.0.1')]).toEqual([
      true,
      true,
      false,
    ]);
    expect(normalizeIp('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeIp('::1')).toBe('::1');
  });

  it.each([
    ['--host-ip=10.0.0.1.2', /--host-ip .*IPv4 or IPv6/],
    ['--host-ip=fd00::1:2::3', /--host-ip .*IPv4 or IPv6/],
    ['--host-ipv6=10.0.0.1', /--host-ipv6 .*IPv6/],
  ])('the flags use the same rule: %s', (flag, why) => {
    expect(() => loadConfig(['--identity-file=/x', flag], {})).toThrow(why);
  });
});
