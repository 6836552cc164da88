import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  assessInterception,
  interfaceMatches,
  podInterfaces,
  readInterfaces,
  startInterceptionMonitor,
  type NetInterface,
} from '../../../src/netfilter/interception.js';

const DEFAULTS = ['eni+', 'cali+', 'lxc+', 'veth+', 'cni0'];
// eth0 (physical), lo, a veth to a pod (peer index 2 in the pod's namespace: not local), Cilium's local pair.
const base: NetInterface[] = [
  { name: 'lo', ifindex: 1, iflink: 1, hasMaster: false },
  { name: 'eth0', ifindex: 2, iflink: 2, hasMaster: false },
  { name: 'cilium_host', ifindex: 3, iflink: 4, hasMaster: false },
  { name: 'cilium_net', ifindex: 4, iflink: 3, hasMaster: false },
];
const veth = (name: string, ifindex: number, hasMaster = false): NetInterface => ({
  name,
  ifindex,
  iflink: 2,
  hasMaster,
});

describe('interfaceMatches (iptables -i)', () => {
  it.each([
    ['eni+', 'eni1a2b3c', true],
    ['eni+', 'eth0', false],
    ['cni0', 'cni0', true],
    ['cni0', 'cni01', false],
    ['lxc+', 'lxc_health', true],
  ])('%s vs %s → %s', (p, n, want) => expect(interfaceMatches(p, n)).toBe(want));
});

describe('podInterfaces', () => {
  it('skips devices with a DEVTYPE (vxlan, vlan: iflink is a parent) and the node uplink (kind: eth0 is a veth)', () => {
    const ifaces = [
      ...base,
      { ...veth('flannel.1', 9), devType: 'vxlan' },
      { ...veth('eth0.100', 10), devType: 'vlan' },
      veth('kindeth', 11),
      veth('cali1', 12),
    ];
    expect(podInterfaces(ifaces, new Set(['kindeth'])).map((i) => i.name)).toEqual(['cali1']);
    expect(assessInterception(['cali+'], ifaces, 2, new Set(['kindeth']))).toEqual({ ok: true, reason: '' });
  });

  it('keeps host ends of veths to other namespaces, not local pairs, bridge ports or devices', () => {
    const names = podInterfaces([...base, veth('lxc12ab', 9), veth('veth1', 10, true)]).map((i) => i.name);
    expect(names).toEqual(['lxc12ab']);
  });
});

describe('assessInterception', () => {
  it.each([
    ['a fresh node: no pods, no pod interfaces', DEFAULTS, base, 0, { ok: true, reason: '' }],
    ['VPC CNI pods, default list', DEFAULTS, [...base, veth('eni1a2b', 9)], 2, { ok: true, reason: '' }],
    ['Cilium pods, default list', DEFAULTS, [...base, veth('lxcabcd', 9)], 1, { ok: true, reason: '' }],
    [
      'bridge CNI: veths on cni0',
      DEFAULTS,
      [...base, { ...veth('cni0', 8), iflink: 8 }, veth('vethx', 9, true)],
      1,
      { ok: true, reason: '' },
    ],
    [
      'Cilium pods, list without lxc+',
      ['eni+', 'cali+'],
      [...base, veth('lxcabcd', 9)],
      1,
      { ok: false, reason: 'unmatched_pod_interface' },
    ],
    [
      'pods, but no interface matches (not veth-based)',
      ['eni+'],
      base,
      3,
      { ok: false, reason: 'no_matching_interface' },
    ],
    [
      'excluded mode: a pod interface in the excluded list',
      ['!eth0', '!lxc+'],
      [...base, veth('lxcab', 9)],
      1,
      { ok: false, reason: 'unmatched_pod_interface' },
    ],
    [
      'excluded mode: everything else intercepted',
      ['!eth0'],
      [...base, veth('lxcab', 9)],
      1,
      { ok: true, reason: '' },
    ],
  ])('%s', (_name, patterns, ifaces, pods, want) => {
    expect(assessInterception(patterns, ifaces, pods)).toMatchObject(want);
  });

  it('names the unmatched interfaces, at most five', () => {
    const many = Array.from({ length: 7 }, (_, i) => veth(`lxc${i}`, 20 + i));
    const s = assessInterception(['eni+'], [...base, ...many], 7);
    expect(s).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/lxc0, lxc1, lxc2, lxc3, lxc4 and 2 more$/),
    });
  });
});

describe('readInterfaces (sysfs layout)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'imdsgate-sysnet-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  it('reads ifindex, iflink and master', async () => {
    for (const [name, idx, link, master] of [
      ['eth0', 2, 2, false],
      ['veth9', 9, 3, true],
    ] as const) {
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, 'ifindex'), `${idx}\n`);
      writeFileSync(join(dir, name, 'iflink'), `${link}\n`);
      if (master) writeFileSync(join(dir, name, 'master'), '');
    }
    mkdirSync(join(dir, 'broken')); // vanished mid-read: skipped
    expect((await readInterfaces(dir)).sort((a, b) => a.ifindex - b.ifindex)).toEqual([
      { name: 'eth0', ifindex: 2, iflink: 2, hasMaster: false },
      { name: 'veth9', ifindex: 9, iflink: 3, hasMaster: true },
    ]);
  });
  it("reads this machine's /sys/class/net", async () => {
    expect((await readInterfaces()).map((i) => i.name)).toContain('lo');
  });
});

describe('startInterceptionMonitor', () => {
  it('reports changes, and survives interfaces it cannot read', async () => {
    let ifaces: NetInterface[] | Error = [veth('lxc1', 9)];
    const changes: string[] = [];
    const errors: string[] = [];
    const m = await startInterceptionMonitor({
      patterns: ['eni+'],
      podsRunning: async () => 1,
      intervalMs: 60_000,
      read: async () => {
        if (ifaces instanceof Error) throw ifaces;
        return ifaces;
      },
      onChange: (now) => changes.push(now.reason || 'ok'),
      onReadError: (e) => errors.push(e.message),
    });
    try {
      expect(m.state()).toMatchObject({ ok: false, reason: 'unmatched_pod_interface' });
      ifaces = new Error('EACCES /sys/class/net');
      await m.check();
      await m.check();
      expect(errors).toEqual(['EACCES /sys/class/net']); // once
      expect(m.state()).toMatchObject({ ok: false }); // the last result stands
      ifaces = [veth('eni1', 9)];
      await m.check();
      expect(m.state()).toEqual({ ok: true, reason: '' });
      expect(changes).toEqual(['unmatched_pod_interface', 'ok']);
    } finally {
      m.stop();
    }
  });
});
