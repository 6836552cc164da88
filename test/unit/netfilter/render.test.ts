import { describe, expect, it } from 'vitest';
import { NetfilterError } from '../../../src/netfilter/errors.js';
import {
  desiredRules,
  expectedListing,
  restoreText,
  uninstallText,
  type RuleOptions,
} from '../../../src/netfilter/render.js';

const base: RuleOptions = {
  interfaces: ['veth+'],
  listen: '0.0.0.0:8181',
  hostIp: '169.254.100.1',
  ipv6: false,
};
const NONE = { raw: false, nat: false };
const BOTH = { raw: true, nat: true };

const RAW_V4 =
  '-d 169.254.169.254/32 -i IF -p tcp -m tcp --dport 80 -m rpfilter --invert -m comment --comment "imdsgate: spoofed pod source" -j DROP';
const NAT_V4 =
  '-d 169.254.169.254/32 -i IF -p tcp -m tcp --dport 80 -m comment --comment "imdsgate: pod metadata to agent" -j DNAT --to-destination TARGET';
const raw4 = (i: string) => `-A IMDSGATE-ANTISPOOF ${RAW_V4.replace('IF', i)}`;
const nat4 = (i: string, t = '169.254.100.1:8181') =>
  `-A IMDSGATE ${NAT_V4.replace('IF', i).replace('TARGET', t)}`;

describe('restoreText: exact iptables-restore input per option', () => {
  const cases: { name: string; opts: Partial<RuleOptions>; jumps?: typeof NONE; want: string[] }[] = [
    {
      name: 'one pattern, first install inserts both jumps',
      opts: {},
      jumps: BOTH,
      want: [
        '*raw',
        ':IMDSGATE-ANTISPOOF - [0:0]',
        raw4('veth+'),
        '-I PREROUTING 1 -j IMDSGATE-ANTISPOOF',
        'COMMIT',
        '*nat',
        ':IMDSGATE - [0:0]',
        nat4('veth+'),
        '-I PREROUTING 1 -j IMDSGATE',
        'COMMIT',
      ],
    },
    {
      name: 'jumps present: chains refilled, no second jump',
      opts: {},
      want: [
        '*raw',
        ':IMDSGATE-ANTISPOOF - [0:0]',
        raw4('veth+'),
        'COMMIT',
        '*nat',
        ':IMDSGATE - [0:0]',
        nat4('veth+'),
        'COMMIT',
      ],
    },
    {
      name: 'only the nat jump missing',
      opts: {},
      jumps: { raw: false, nat: true },
      want: [
        '*raw',
        ':IMDSGATE-ANTISPOOF - [0:0]',
        raw4('veth+'),
        'COMMIT',
        '*nat',
        ':IMDSGATE - [0:0]',
        nat4('veth+'),
        '-I PREROUTING 1 -j IMDSGATE',
        'COMMIT',
      ],
    },
    {
      name: 'default patterns: one rule per interface, in order',
      opts: { interfaces: ['eni+', 'cali+', 'veth+', 'cni0'] },
      want: [
        '*raw',
        ':IMDSGATE-ANTISPOOF - [0:0]',
        raw4('eni+'),
        raw4('cali+'),
        raw4('veth+'),
        raw4('cni0'),
        'COMMIT',
        '*nat',
        ':IMDSGATE - [0:0]',
        nat4('eni+'),
        nat4('cali+'),
        nat4('veth+'),
        nat4('cni0'),
        'COMMIT',
      ],
    },
    {
      name: 'every interface but these: RETURN each, then one catch-all rule',
      opts: { interfaces: ['!eth0', '!ens+'] },
      want: [
        '*raw',
        ':IMDSGATE-ANTISPOOF - [0:0]',
        '-A IMDSGATE-ANTISPOOF -d 169.254.169.254/32 -i eth0 -p tcp -m tcp --dport 80 -m comment --comment "imdsgate: not a pod interface" -j RETURN',
        '-A IMDSGATE-ANTISPOOF -d 169.254.169.254/32 -i ens+ -p tcp -m tcp --dport 80 -m comment --comment "imdsgate: not a pod interface" -j RETURN',
        '-A IMDSGATE-ANTISPOOF -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m rpfilter --invert -m comment --comment "imdsgate: spoofed pod source" -j DROP',
        'COMMIT',
        '*nat',
        ':IMDSGATE - [0:0]',
        '-A IMDSGATE -d 169.254.169.254/32 -i eth0 -p tcp -m tcp --dport 80 -m comment --comment "imdsgate: not a pod interface" -j RETURN',
        '-A IMDSGATE -d 169.254.169.254/32 -i ens+ -p tcp -m tcp --dport 80 -m comment --comment "imdsgate: not a pod interface" -j RETURN',
        '-A IMDSGATE -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m comment --comment "imdsgate: pod metadata to agent" -j DNAT --to-destination 169.254.100.1:8181',
        'COMMIT',
      ],
    },
    {
      name: 'no --host-ip: the specific listen address and its port',
      opts: { hostIp: undefined, listen: '169.254.1.1:9000' },
      want: [
        '*raw',
        ':IMDSGATE-ANTISPOOF - [0:0]',
        raw4('veth+'),
        'COMMIT',
        '*nat',
        ':IMDSGATE - [0:0]',
        nat4('veth+', '169.254.1.1:9000'),
        'COMMIT',
      ],
    },
    {
      name: '--host-ip wins over a specific listen address',
      opts: { listen: '169.254.1.1:9000' },
      want: [
        '*raw',
        ':IMDSGATE-ANTISPOOF - [0:0]',
        raw4('veth+'),
        'COMMIT',
        '*nat',
        ':IMDSGATE - [0:0]',
        nat4('veth+', '169.254.100.1:9000'),
        'COMMIT',
      ],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const [v4, ...rest] = desiredRules({ ...base, ...c.opts });
      expect(rest).toEqual([]);
      expect(restoreText(v4!, c.jumps ?? NONE)).toBe(`${c.want.join('\n')}\n`);
    });
  }
});

describe('ipv6', () => {
  const cases: { name: string; opts: Partial<RuleOptions>; target: string }[] = [
    // [::] takes both families; a socket on 0.0.0.0 would receive none of the IPv6 DNAT.
    {
      name: 'explicit --host-ipv6',
      opts: { listen: '[::]:8181', hostIpv6: 'fd00:1::1' },
      target: '[fd00:1::1]:8181',
    },
    {
      name: 'written long, printed as ip6tables does',
      opts: { listen: '[::]:8181', hostIpv6: 'FD00:0001:0:0::0:1' },
      target: '[fd00:1::1]:8181',
    },
    {
      name: 'explicit --host-ipv6 with both families listened on',
      opts: { listen: '[::]:8181', hostIpv6: 'fd00:2::5' },
      target: '[fd00:2::5]:8181',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const rules = desiredRules({ ...base, ipv6: true, ...c.opts });
      expect(rules.map((r) => r.family)).toEqual(['ipv4', 'ipv6']);
      expect(restoreText(rules[1]!, BOTH)).toBe(
        [
          '*raw',
          ':IMDSGATE-ANTISPOOF - [0:0]',
          '-A IMDSGATE-ANTISPOOF -d fd00:ec2::254/128 -i veth+ -p tcp -m tcp --dport 80 -m rpfilter --invert -m comment --comment "imdsgate: spoofed pod source" -j DROP',
          '-I PREROUTING 1 -j IMDSGATE-ANTISPOOF',
          'COMMIT',
          '*nat',
          ':IMDSGATE - [0:0]',
          `-A IMDSGATE -d fd00:ec2::254/128 -i veth+ -p tcp -m tcp --dport 80 -m comment --comment "imdsgate: pod metadata to agent" -j DNAT --to-destination ${c.target}`,
          '-I PREROUTING 1 -j IMDSGATE',
          'COMMIT',
          '',
        ].join('\n'),
      );
    });
  }
});

describe('expectedListing: what iptables -S CHAIN prints', () => {
  it('starts with -N and lists the rules in order', () => {
    const [v4] = desiredRules({ ...base, interfaces: ['cali+', 'cni0'] });
    expect(expectedListing(v4!, 'nat')).toEqual(['-N IMDSGATE', nat4('cali+'), nat4('cni0')]);
    expect(expectedListing(v4!, 'raw')).toEqual(['-N IMDSGATE-ANTISPOOF', raw4('cali+'), raw4('cni0')]);
  });
});

describe('options that cannot become rules', () => {
  const cases: { name: string; opts: Partial<RuleOptions>; error: RegExp }[] = [
    { name: 'no patterns', opts: { interfaces: [] }, error: /at least one pattern/ },
    {
      name: 'mixed ! and plain',
      opts: { interfaces: ['veth+', '!eth0'] },
      error: /mix of "!name" and "name"/,
    },
    { name: 'too long', opts: { interfaces: ['abcdefghijklmnop'] }, error: /not an interface name/ },
    { name: 'injection attempt', opts: { interfaces: ['veth+ -j ACCEPT'] }, error: /not an interface name/ },
    { name: 'newline', opts: { interfaces: ['eth0\nCOMMIT'] }, error: /not an interface name/ },
    { name: 'bare !', opts: { interfaces: ['!'] }, error: /not an interface name/ },
    { name: 'wildcard in the middle', opts: { interfaces: ['ve+th'] }, error: /not an interface name/ },
    {
      name: 'listening on every address, no --host-ip',
      opts: { hostIp: undefined },
      error: /--host-ip is required: --listen 0.0.0.0:8181/,
    },
    {
      name: 'hostname listen, no --host-ip',
      opts: { hostIp: undefined, listen: 'node:8181' },
      error: /--host-ip is required/,
    },
    { name: 'loopback', opts: { hostIp: '127.0.0.1' }, error: /--host-ip 127.0.0.1: must be a node address/ },
    {
      name: 'the metadata address itself',
      opts: { hostIp: '169.254.169.254' },
      error: /not the metadata address/,
    },
    { name: 'ipv6 without an IPv6 address', opts: { ipv6: true }, error: /--host-ipv6 is required/ },
    {
      name: 'ipv6 listening on [::]',
      opts: { ipv6: true, listen: '[::]:8181' },
      error: /--host-ipv6 is required/,
    },
    {
      name: 'ipv6 loopback',
      opts: { ipv6: true, hostIpv6: '::1' },
      error: /--host-ipv6 ::1: must be a node address/,
    },
    {
      name: 'ipv6 metadata',
      opts: { ipv6: true, hostIpv6: 'fd00:ec2:0::254' },
      error: /not the metadata address/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      let caught: unknown;
      try {
        desiredRules({ ...base, ...c.opts });
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(NetfilterError);
      expect((caught as NetfilterError).kind).toBe('config');
      expect((caught as Error).message).toMatch(c.error);
    });
  }
});

describe('uninstallText', () => {
  const cases: { name: string; state: Parameters<typeof uninstallText>[0]; want: string[] }[] = [
    {
      name: 'nothing installed',
      state: { raw: { chainExists: false, jumps: 0 }, nat: { chainExists: false, jumps: 0 } },
      want: [],
    },
    {
      name: 'everything installed: nat first, then raw',
      state: { raw: { chainExists: true, jumps: 1 }, nat: { chainExists: true, jumps: 1 } },
      want: [
        '*nat',
        '-D PREROUTING -j IMDSGATE',
        ':IMDSGATE - [0:0]',
        '-X IMDSGATE',
        'COMMIT',
        '*raw',
        '-D PREROUTING -j IMDSGATE-ANTISPOOF',
        ':IMDSGATE-ANTISPOOF - [0:0]',
        '-X IMDSGATE-ANTISPOOF',
        'COMMIT',
      ],
    },
    {
      name: 'duplicated jump, chain only in raw',
      state: { raw: { chainExists: true, jumps: 0 }, nat: { chainExists: true, jumps: 2 } },
      want: [
        '*nat',
        '-D PREROUTING -j IMDSGATE',
        '-D PREROUTING -j IMDSGATE',
        ':IMDSGATE - [0:0]',
        '-X IMDSGATE',
        'COMMIT',
        '*raw',
        ':IMDSGATE-ANTISPOOF - [0:0]',
        '-X IMDSGATE-ANTISPOOF',
        'COMMIT',
      ],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      expect(uninstallText(c.state)).toBe(c.want.length === 0 ? '' : `${c.want.join('\n')}\n`);
    });
  }
});
