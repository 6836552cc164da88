// The route-table reader (src/pods/routes.ts, from dist/) on the real kernel: inside a network namespace
// of our own, IPv4 /32 and IPv6 /128 host routes through veths, read from that namespace's /proc and /sys.
// A veth recreated under the same name (as calico and aws-vpc-cni name them after the pod) must show a new
// ifindex; a removed route must show nothing.
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, requireBuild } from './sandbox/cli.js';
import { createNetns, deleteNetns, netnsName } from './sandbox/netns.js';

const V4 = '169.254.30.5';
const V6 = 'fd00:30::5';
const batch = (ns: string, lines: string[]) =>
  execa('ip', ['-n', ns, '-batch', '-'], { input: lines.join('\n') + '\n' });

async function readInNs(ns: string, ips: string[]) {
  const script = `const { createRouteTable } = await import(${JSON.stringify(`${ROOT}dist/pods/routes.js`)});
const t = createRouteTable();
console.log(JSON.stringify(${JSON.stringify(ips)}.map((ip) => t.signalFor(ip) ?? null)));`;
  const r = await execa('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', script]);
  return JSON.parse(r.stdout) as ({ kind: 'route'; ifindex: number; iface: string } | null)[];
}

async function ifindex(ns: string, iface: string): Promise<number> {
  const r = await execa('ip', ['-n', ns, '-j', 'link', 'show', 'dev', iface]);
  return (JSON.parse(r.stdout) as { ifindex: number }[])[0]!.ifindex;
}

const addVeth = (ns: string, name: string) =>
  batch(ns, [
    `link add ${name} type veth peer name ${name}p`,
    `link set ${name} up`,
    `link set ${name}p up`,
    `route add ${V4}/32 dev ${name}`,
    `route add ${V6}/128 dev ${name}`,
  ]);

describe('route table on the real kernel', () => {
  let ns: string;
  beforeAll(async () => {
    requireBuild();
    ns = await createNetns(netnsName('routes'));
    // Other pods' routes around ours, so the reader has to pick the right line.
    const others = Array.from({ length: 20 }, (_, i) => [
      `link add o${i} type veth peer name o${i}p`,
      `link set o${i} up`,
      `link set o${i}p up`,
      `route add 169.254.31.${i + 1}/32 dev o${i}`,
      `route add fd00:31::${(i + 1).toString(16)}/128 dev o${i}`,
    ]).flat();
    await batch(ns, others);
  });
  afterAll(async () => {
    if (ns !== undefined) await deleteNetns(ns);
  });

  it('names the veth and its ifindex for IPv4 and IPv6 host routes, and a new ifindex after recreation', async () => {
    await addVeth(ns, 'calipod');
    const first = await ifindex(ns, 'calipod');
    expect(await readInNs(ns, [V4, V6])).toEqual([
      { kind: 'route', ifindex: first, iface: 'calipod' },
      { kind: 'route', ifindex: first, iface: 'calipod' },
    ]);
    await batch(ns, ['link del calipod']);
    expect(await readInNs(ns, [V4, V6])).toEqual([null, null]);
    await addVeth(ns, 'calipod');
    const second = await ifindex(ns, 'calipod');
    expect(second).not.toBe(first);
    expect(await readInNs(ns, [V4, V6])).toEqual([
      { kind: 'route', ifindex: second, iface: 'calipod' },
      { kind: 'route', ifindex: second, iface: 'calipod' },
    ]);
    expect(await readInNs(ns, ['169.254.31.7'])).toEqual([
      { kind: 'route', ifindex: await ifindex(ns, 'o6'), iface: 'o6' },
    ]);
  });
});
