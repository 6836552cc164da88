// The route-table reader on files laid out like /proc/net/route, /proc/net/ipv6_route and
// /sys/class/net/<iface>/ifindex (text as the kernel prints it), and once on this machine's own /proc.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRouteTable, hexV4, hexV6, hostRouteV4, hostRouteV6 } from '../../../src/pods/routes.js';

const ROUTE = [
  'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT       ',
  'eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0                                     ',
  // the pod subnet through a bridge: not a host route
  'cni0\t0000FEA9\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0                                     ',
  // 169.254.10.10/32 via calia (metric 100) and calib (metric 0)
  'calia\t0A0AFEA9\t00000000\t0005\t0\t0\t100\tFFFFFFFF\t0\t0\t0                                  ',
  'calib\t0A0AFEA9\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0                                    ',
  // 169.254.10.11/32 blackhole (reject), and a route whose gateway (not destination) is .11
  '*\t0B0AFEA9\t00000000\t0201\t0\t0\t0\tFFFFFFFF\t0\t0\t0                                        ',
  'eth0\t0C0AFEA9\t0B0AFEA9\t0007\t0\t0\t0\tFFFFFFFF\t0\t0\t0                                     ',
  // 169.254.10.13/32, down (flags 0)
  'vethd\t0D0AFEA9\t00000000\t0004\t0\t0\t0\tFFFFFFFF\t0\t0\t0                                    ',
].join('\n');

const V6 = [
  'fd000010000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     cni0',
  'fd00001000000000000000000000000a 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000400 00000001 00000000 00000001    vethx',
  'fd00001000000000000000000000000b 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000001 00000000 80200001       lo',
].join('\n');

describe('route text', () => {
  it.each([
    ['169.254.10.10', true, '0A0AFEA9'],
    ['169.254.10.10', false, 'A9FE0A0A'],
    ['10.0.0.1', true, '0100000A'],
  ])('hexV4(%s, little=%s) = %s', (ip, little, want) => expect(hexV4(ip, little)).toBe(want));

  it.each([
    ['fd00:10::a', 'fd00001000000000000000000000000a'],
    ['::1', '00000000000000000000000000000001'],
    ['2001:db8:0:0:1:0:0:1', '20010db8000000000001000000000001'],
    ['fe80::', 'fe800000000000000000000000000000'],
  ])('hexV6(%s)', (ip, want) => expect(hexV6(ip)).toBe(want));

  it.each([
    ['169.254.10.10 lowest metric wins', '0A0AFEA9', 'calib'],
    ['169.254.10.11 blackhole, and only a gateway match', '0B0AFEA9', undefined],
    ['169.254.10.12 host route via gateway', '0C0AFEA9', 'eth0'],
    ['169.254.10.13 route not up', '0D0AFEA9', undefined],
    ['169.254.0.0 subnet, not a host route', '0000FEA9', undefined],
    ['absent', '0E0AFEA9', undefined],
  ])('IPv4 %s', (_n, hex, want) => expect(hostRouteV4(ROUTE, hex)).toBe(want));

  it.each([
    ['a /128 through a veth', 'fd00001000000000000000000000000a', 'vethx'],
    ['the node itself (lo)', 'fd00001000000000000000000000000b', undefined],
    ['a /64 is not a host route', 'fd000010000000000000000000000000', undefined],
  ])('IPv6 %s', (_n, hex, want) => expect(hostRouteV6(V6, hex)).toBe(want));
});

describe('createRouteTable', () => {
  const root = mkdtempSync(join(tmpdir(), 'imdsgate-routes-'));
  mkdirSync(join(root, 'proc/net'), { recursive: true });
  writeFileSync(join(root, 'proc/net/route'), ROUTE);
  writeFileSync(join(root, 'proc/net/ipv6_route'), V6);
  for (const [iface, idx] of [
    ['calib', '42'],
    ['vethx', '43\n'],
    ['eth0', 'garbage'],
  ] as const) {
    mkdirSync(join(root, 'sys/class/net', iface), { recursive: true });
    writeFileSync(join(root, 'sys/class/net', iface, 'ifindex'), idx);
  }
  const table = createRouteTable({ procRoot: join(root, 'proc'), sysRoot: join(root, 'sys') });

  it('answers interface and ifindex for IPv4 and IPv6 host routes', () => {
    expect(table.signalFor('169.254.10.10')).toEqual({ kind: 'route', ifindex: 42, iface: 'calib' });
    expect(table.signalFor('fd00:10::a')).toEqual({ kind: 'route', ifindex: 43, iface: 'vethx' });
  });

  it('answers nothing without a route, an interface directory or a number in it', () => {
    expect(table.signalFor('169.254.10.99')).toBeUndefined();
    expect(table.signalFor('169.254.10.12')).toBeUndefined(); // eth0 ifindex is garbage
    expect(createRouteTable({ procRoot: '/nonexistent' }).signalFor('169.254.10.10')).toBeUndefined();
  });

  it('reads the machine: a route of the main table, when there is one, resolves to its real ifindex', () => {
    const line = readFileSync('/proc/net/route', 'latin1')
      .split('\n')
      .slice(1)
      .map((l) => l.split('\t').map((x) => x.trim()))
      .find((f) => f[7] === 'FFFFFFFF' && f[0] !== '*' && (Number.parseInt(f[3] ?? '0', 16) & 1) === 1);
    if (line === undefined) return; // no host route on this machine: the fixtures above cover parsing
    const hex = line[1] ?? '';
    const bytes = (hex.match(/../g) ?? []).map((b) => Number.parseInt(b, 16)).reverse();
    const got = createRouteTable().signalFor(bytes.join('.'));
    const want = Number(readFileSync(`/sys/class/net/${line[0]}/ifindex`, 'utf8'));
    expect(got).toEqual({ kind: 'route', ifindex: want, iface: line[0] });
  });
});
