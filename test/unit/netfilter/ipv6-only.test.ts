// IPv6-only and dual-stack nodes (issue 12 point 5): which families are intercepted, what IPv4 does with
// no IPv4 node address, and that the agent listens where each family's DNAT points.
import { describe, expect, it } from 'vitest';
import { NetfilterError } from '../../../src/netfilter/errors.js';
import { desiredRules, expectedListing, type RuleOptions } from '../../../src/netfilter/render.js';

const base: RuleOptions = { interfaces: ['veth+'], listen: '[fd00:100::1]:8181', ipv6: false };
const TCP = '-p tcp -m tcp --dport 80';
const DROP4 = `-A IMDSGATE-ANTISPOOF -d 169.254.169.254/32 -i veth+ ${TCP} -m comment --comment "imdsgate: no node address of this family" -j DROP`;
const DNAT6 = (t: string) =>
  `-A IMDSGATE -d fd00:ec2::254/128 -i veth+ ${TCP} -m comment --comment "imdsgate: pod metadata to agent" -j DNAT --to-destination ${t}`;

describe('an IPv6-only node: IPv6 intercepted without --ipv6, IPv4 metadata traffic dropped', () => {
  const cases: { name: string; opts: Partial<RuleOptions>; target: string }[] = [
    { name: 'the listen address is the node IPv6 address', opts: {}, target: '[fd00:100::1]:8181' },
    {
      name: '--host-ipv6 with [::]',
      opts: { listen: '[::]:9000', hostIpv6: 'FD00:100:0::7' },
      target: '[fd00:100::7]:9000',
    },
    { name: 'with --ipv6 as well', opts: { ipv6: true }, target: '[fd00:100::1]:8181' },
  ];
  it.each(cases)('$name', ({ opts, target }) => {
    const [v4, v6] = desiredRules({ ...base, ...opts });
    expect([v4?.family, v6?.family]).toEqual(['ipv4', 'ipv6']);
    expect(expectedListing(v4!, 'raw')).toEqual(['-N IMDSGATE-ANTISPOOF', DROP4]);
    expect(expectedListing(v4!, 'nat')).toEqual(['-N IMDSGATE']);
    expect(expectedListing(v6!, 'nat')).toEqual(['-N IMDSGATE', DNAT6(target)]);
  });

  it('an excluding interface list still returns the node interfaces before the drop', () => {
    const [v4] = desiredRules({ ...base, interfaces: ['!eth0'] });
    expect(v4!.chains.raw).toEqual([
      `-d 169.254.169.254/32 -i eth0 ${TCP} -m comment --comment "imdsgate: not a pod interface" -j RETURN`,
      `-d 169.254.169.254/32 ${TCP} -m comment --comment "imdsgate: no node address of this family" -j DROP`,
    ]);
  });
});

describe('dual-stack: each family only where an IPv4 node address exists', () => {
  it('an IPv4 address keeps IPv4 DNAT and IPv6 off without --ipv6', () => {
    const rules = desiredRules({
      ...base,
      listen: '[::]:8181',
      hostIp: '169.254.100.1',
      hostIpv6: 'fd00:100::1',
    });
    expect(rules.map((r) => r.family)).toEqual(['ipv4']);
    expect(rules[0]!.chains.nat[0]).toContain('--to-destination 169.254.100.1:8181');
  });
});

describe('the agent must listen where the DNAT points', () => {
  it.each([
    [
      'IPv6 DNAT, IPv4-only socket',
      { listen: '0.0.0.0:8181', hostIp: '169.254.100.1', ipv6: true, hostIpv6: 'fd00:100::1' },
      /--listen 0.0.0.0:8181 receives no ipv6 traffic/,
    ],
    [
      'IPv4 DNAT, IPv6 address socket',
      { hostIp: '169.254.100.1' },
      /--listen \[fd00:100::1\]:8181 receives no ipv4 traffic.*\[::\]:8181/,
    ],
    [
      'IPv6 DNAT, IPv4 address socket',
      { listen: '[169.254.100.1]:8181', ipv6: true, hostIpv6: 'fd00:100::1' },
      /receives no ipv6 traffic/,
    ],
  ] as [string, Partial<RuleOptions>, RegExp][])('%s', (_name, opts, why) => {
    let caught: unknown;
    try {
      desiredRules({ ...base, ...opts });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(NetfilterError);
    expect((caught as Error).message).toMatch(why);
  });
});
