// IP handovers between pods, as a CNI and a kubelet make them, on the sandbox (test/e2e/sandbox): the old
// sandbox's veth goes (CNI DEL), a new veth with a new ifindex gets the same /32 (CNI ADD, the per-pod
// host-route model of calico, aws-vpc-cni and the ptp plugin), a prober inside fires a metadata request
// every millisecond from that instant on, and only then do the API calls come: the old pod deleted (the
// retiring call), the new pod created with its status claiming the IP. Every answer is traced to the role
// the agent named (the credentials listing is the role decision itself).
import { execa } from 'execa';
import { createPod, deletePod } from '../../env/kube.js';
import { ROOT } from '../sandbox/cli.js';
import { spawnInNetns, waitFor, type NetnsProcess } from '../sandbox/processes.js';
import type { Sandbox, SandboxPod } from '../sandbox/sandbox.js';
import { POD_GATEWAY } from '../sandbox/topology.js';
import { connect } from 'node:net';
import { join } from 'node:path';

export const CREDS = '/latest/meta-data/iam/security-credentials/';
export const ROLES = ['churn-even', 'churn-odd'] as const;
export const roleOf = (gen: number) => ROLES[gen % 2]!;

export interface Probe {
  readonly sent: number;
  readonly done: number;
  readonly status: number;
  readonly body: string;
}

export interface Handover {
  readonly slot: number;
  readonly gen: number;
  /** When the new sandbox's veth was up, ms since the epoch. */
  readonly wiredAt: number;
  /** When the retiring call (delete of the old pod) returned, ms since the epoch. */
  readonly retiredAt: number;
  readonly probes: readonly Probe[];
  /** The old pod's role. */
  readonly oldRole: string;
  readonly newRole: string;
}

export interface Slot {
  readonly pod: SandboxPod;
  readonly prober: NetnsProcess;
  readonly socket: string;
  veth: string;
  gen: number;
  name: string;
}

export async function startProbers(sb: Sandbox): Promise<Slot[]> {
  const script = join(ROOT, 'test/e2e/binding/prober.mjs');
  return Promise.all(
    sb.pods.map(async (pod, i) => {
      const socket = join(sb.logDir, `prober${i}.sock`);
      const prober = spawnInNetns(
        pod.netns,
        process.execPath,
        [script, socket],
        join(sb.logDir, `prober${i}.log`),
      );
      await waitFor('prober', prober, async () => prober.log().includes('prober ready'));
      return { pod, prober, socket, veth: sb.topology.pods[i]!.veth, gen: 0, name: pod.name };
    }),
  );
}

/**
 * Fires requests from the slot's namespace every `every` ms for `ms` ms. `started` resolves once the
 * first request is sent, `probes` with every answer.
 */
export function burst(slot: Slot, ms: number, every = 1, path = CREDS) {
  let started!: () => void;
  const startedP = new Promise<void>((r) => (started = r));
  const probes = new Promise<Probe[]>((resolve, reject) => {
    const c = connect(slot.socket);
    let out = '';
    c.on('error', reject);
    c.on('data', (d) => {
      out += d;
      if (out.startsWith('started\n')) started();
    });
    c.on('end', () => resolve(JSON.parse(out.slice('started\n'.length)) as Probe[]));
    c.write(JSON.stringify({ ms, every, path }) + '\n');
  });
  return { started: startedP, probes };
}

const ipBatch = (ns: string, lines: string[]) =>
  execa('ip', ['-n', ns, '-batch', '-'], { input: lines.join('\n') + '\n' });

/** The old sandbox's veth goes, a new one (new ifindex) takes the same address. */
async function rewire(sb: Sandbox, slot: Slot): Promise<void> {
  const node = sb.topology.node;
  const veth = `veth${sb.pods.indexOf(slot.pod)}g${slot.gen + 1}`;
  await ipBatch(node, [`link del ${slot.veth}`]);
  await ipBatch(node, [
    `link add ${veth} type veth peer name eth0 netns ${slot.pod.netns}`,
    `addr add ${POD_GATEWAY}/32 dev ${veth}`,
    `link set ${veth} up`,
    `route add ${slot.pod.ip}/32 dev ${veth}`,
  ]);
  await ipBatch(slot.pod.netns, [
    `addr add ${slot.pod.ip}/32 dev eth0`,
    'link set eth0 up',
    `route add ${POD_GATEWAY} dev eth0 scope link`,
    `route add default via ${POD_GATEWAY} dev eth0`,
  ]);
  slot.veth = veth;
}

/** One handover on slot: returns every answer the new sandbox got while the view caught up. */
export async function handover(sb: Sandbox, slot: Slot, nodeName: string, probeMs = 150): Promise<Handover> {
  const oldRole = roleOf(slot.gen);
  const newRole = roleOf(slot.gen + 1);
  const newName = `${slot.pod.name}-g${slot.gen + 1}`;
  await rewire(sb, slot);
  const wiredAt = performance.timeOrigin + performance.now();
  const before = burst(slot, probeMs);
  await before.started;
  await deletePod(slot.pod.kubeNamespace, slot.name);
  const retiredAt = performance.timeOrigin + performance.now();
  // A second burst from the moment the retiring call returned: under load that call can outlast the first.
  const after = burst(slot, probeMs);
  await createPod({
    namespace: slot.pod.kubeNamespace,
    name: newName,
    nodeName,
    serviceAccount: slot.pod.name,
    annotations: { 'iam.amazonaws.com/role': newRole },
    podIP: slot.pod.ip,
    phase: 'Running',
  });
  const h = {
    slot: sb.pods.indexOf(slot.pod),
    gen: slot.gen + 1,
    wiredAt,
    retiredAt,
    probes: [...(await before.probes), ...(await after.probes)],
    oldRole,
    newRole,
  };
  slot.gen += 1;
  slot.name = newName;
  return h;
}

/** Polls from the slot until the agent names role, up to ms; true when it did. */
export async function eventually(slot: Slot, role: string, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const [p] = await burst(slot, 1, 1).probes;
    if (p?.status === 200 && p.body === role) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** Runs fn over items with at most n in flight. */
export async function pool<T, R>(items: readonly T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}
