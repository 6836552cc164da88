// The pod watcher with a scripted API client and a scripted node (SandboxLookup): a request from a sandbox
// other than the one recorded for the pod the view names waits for the view, then gets the new pod or
// fails closed; Terminating pods keep their identity only while their sandbox owns the address. The same
// handover on the real kube-apiserver, in network namespaces, is test/e2e/binding.test.ts.
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { KubeClient, WatchEvent } from '../../../src/kube/rest.js';
import { createLogger } from '../../../src/logger.js';
import { createMetrics } from '../../../src/metrics.js';
import type { SandboxBindingMode, SandboxSignal } from '../../../src/pods/sandbox.js';
import { startPodWatcher, type PodWatcher } from '../../../src/pods/watcher.js';

const IP = '169.254.10.2';
const pod = (name: string, uid: string, extra: { deletionTimestamp?: string } = {}) => ({
  metadata: { name, namespace: 'team-a', uid, resourceVersion: '5', ...extra },
  spec: { nodeName: 'n1', serviceAccountName: name },
  status: { phase: 'Running', podIP: IP },
});
const VETH_A: SandboxSignal = { kind: 'route', ifindex: 7, iface: 'vetha' };
const VETH_B: SandboxSignal = { kind: 'route', ifindex: 9, iface: 'vethb' };

function setup(
  mode: SandboxBindingMode,
  listed: unknown[],
  route: SandboxSignal | undefined,
  waitMs = 300,
  ipamLeaseDir?: string,
) {
  let emit: ((e: WatchEvent<unknown>) => void) | undefined;
  const node = { route, reads: 0 };
  const registry = new Registry();
  const client: KubeClient = {
    server: 'http://test',
    request: () => Promise.reject(new Error('unused')),
    list: async () => ({ items: listed as never[], resourceVersion: '5' }),
    watch: (_p, _q, onEvent, o) => {
      emit = onEvent as (e: WatchEvent<unknown>) => void;
      return new Promise<void>((r) => o?.signal?.addEventListener('abort', () => r(), { once: true }));
    },
    close: async () => undefined,
  };
  const watcher = startPodWatcher({
    client,
    nodeName: 'n1',
    unknownPodWaitMs: waitMs,
    clock: Date.now,
    metrics: createMetrics(registry, { defaults: false }),
    logger: createLogger('error', { write: () => undefined }),
    sandboxBinding: mode,
    // With a lease directory: the agent's own node signals (this machine's routes, then the leases).
    ...(ipamLeaseDir !== undefined
      ? { ipamLeaseDir }
      : {
          sandboxes: {
            signalFor: (ip: string) => {
              node.reads++;
              return ip === IP ? node.route : undefined;
            },
          },
        }),
  });
  return {
    watcher,
    node,
    send(type: 'ADDED' | 'MODIFIED' | 'DELETED', object: unknown) {
      if (emit === undefined) throw new Error('watch not started yet');
      emit({ type, object });
    },
    /** The first list is in and the watch is open. */
    async started() {
      await watcher.synced;
      while (emit === undefined) await new Promise((r) => setTimeout(r, 1));
    },
    // Series that counted something (every outcome's series exists from the start, at 0).
    metric: async (name: string) =>
      (await registry.getSingleMetricAsString(name))
        .split('\n')
        .slice(2)
        .filter((l) => !l.endsWith(' 0')),
  };
}

let watcher: PodWatcher | undefined;
afterEach(() => watcher?.stop());
const name = async (w: PodWatcher) => {
  const r = await w.byIp(IP);
  return r.kind === 'found' ? r.pod.name : r.kind === 'unbound' ? r.reason : r.kind;
};

describe('pod watcher with sandbox binding', () => {
  it('serves the pod whose sandbox routes its IP', async () => {
    const s = setup('auto', [pod('a', 'uid-a')], VETH_A);
    watcher = s.watcher;
    await s.started();
    expect(await name(s.watcher)).toBe('a');
  });

  it('holds a request from a new sandbox until the view names the new pod, then serves that pod', async () => {
    const s = setup('auto', [pod('a', 'uid-a')], VETH_A);
    watcher = s.watcher;
    await s.started();
    s.node.route = VETH_B; // A's veth gone, B's veth holds the IP; the view still says A
    const pending = name(s.watcher);
    await new Promise((r) => setTimeout(r, 50));
    s.send('DELETED', pod('a', 'uid-a'));
    s.send('ADDED', pod('b', 'uid-b'));
    expect(await pending).toBe('b');
    expect(await s.metric('imdsgate_sandbox_binding_waits_total')).toEqual([
      'imdsgate_sandbox_binding_waits_total{outcome="bound"} 1',
    ]);
  });

  it('fails closed when the view does not catch up within the wait', async () => {
    const s = setup('auto', [pod('a', 'uid-a')], VETH_A, 100);
    watcher = s.watcher;
    await s.started();
    s.node.route = VETH_B;
    const started = performance.now();
    expect(await name(s.watcher)).toBe('sandbox_changed');
    expect(performance.now() - started).toBeGreaterThanOrEqual(95);
    expect(await s.metric('imdsgate_sandbox_binding_waits_total')).toEqual([
      'imdsgate_sandbox_binding_waits_total{outcome="refused"} 1',
    ]);
  });

  it('refuses at once, without waiting, when the wait is 0', async () => {
    const s = setup('route', [pod('a', 'uid-a')], VETH_A, 0);
    watcher = s.watcher;
    await s.started();
    s.node.route = undefined;
    expect(await name(s.watcher)).toBe('sandbox_changed');
  });

  it('keeps a Terminating pod while its sandbox owns the IP, not after', async () => {
    const s = setup('auto', [pod('a', 'uid-a', { deletionTimestamp: '2030-01-01T00:00:00Z' })], VETH_A, 0);
    watcher = s.watcher;
    await s.started();
    expect(await name(s.watcher)).toBe('a');
    s.node.route = VETH_B;
    expect(await name(s.watcher)).toBe('sandbox_changed');
  });

  it('serves the newcomer when a Terminating pod whose sandbox is gone still claims its IP', async () => {
    const s = setup('auto', [pod('a', 'uid-a', { deletionTimestamp: '2030-01-01T00:00:00Z' })], VETH_A, 0);
    watcher = s.watcher;
    await s.started();
    s.node.route = VETH_B;
    s.send('ADDED', pod('b', 'uid-b'));
    expect(await name(s.watcher)).toBe('b');
  });

  it('still refuses two live pods on one IP that the node cannot tell apart', async () => {
    const s = setup('auto', [pod('a', 'uid-a'), pod('b', 'uid-b')], VETH_A, 0);
    watcher = s.watcher;
    await s.started();
    expect(await name(s.watcher)).toBe('conflict');
  });

  it('quarantine: a Terminating pod loses identity; its departed address stays quarantined', async () => {
    const s = setup('quarantine', [pod('a', 'uid-a')], undefined, 0);
    watcher = s.watcher;
    await s.started();
    expect(await name(s.watcher)).toBe('a');
    s.send('MODIFIED', pod('a', 'uid-a', { deletionTimestamp: '2030-01-01T00:00:00Z' }));
    expect(await name(s.watcher)).toBe('address_quarantined');
    s.send('DELETED', pod('a', 'uid-a'));
    expect(await name(s.watcher)).toBe('address_quarantined');
    s.send('ADDED', pod('b', 'uid-b'));
    expect(await name(s.watcher)).toBe('b');
  });

  it('auto on a pod IP without a host route behaves as quarantine', async () => {
    const s = setup('auto', [pod('a', 'uid-a', { deletionTimestamp: '2030-01-01T00:00:00Z' })], undefined, 0);
    watcher = s.watcher;
    await s.started();
    expect(await name(s.watcher)).toBe('address_quarantined');
  });

  it('reads the routes once per connection: a verified connection stays with its sandbox', async () => {
    const s = setup('auto', [pod('a', 'uid-a')], VETH_A, 0);
    watcher = s.watcher;
    await s.started();
    const keepAlive = {};
    const reads = s.node.reads;
    for (let i = 0; i < 3; i++) expect(await s.watcher.byIp(IP, keepAlive)).toMatchObject({ kind: 'found' });
    expect(s.node.reads - reads).toBe(1);
    // A later sandbox cannot speak on this connection, so only new connections see the new route.
    s.node.route = VETH_B;
    expect(await s.watcher.byIp(IP, keepAlive)).toMatchObject({ kind: 'found', pod: { name: 'a' } });
    expect(await s.watcher.byIp(IP, {})).toEqual({ kind: 'unbound', reason: 'sandbox_changed' });
    // The view moving on (a new pod on the IP) is still seen on the old connection: it is not the new pod.
    s.send('DELETED', pod('a', 'uid-a'));
    s.send('ADDED', pod('b', 'uid-b'));
    expect(await s.watcher.byIp(IP, {})).toMatchObject({ kind: 'found', pod: { name: 'b' } });
  });

  it('off: the API view alone, Terminating pods included', async () => {
    const s = setup('off', [pod('a', 'uid-a', { deletionTimestamp: '2030-01-01T00:00:00Z' })], VETH_A, 0);
    watcher = s.watcher;
    await s.started();
    s.node.route = VETH_B;
    expect(await name(s.watcher)).toBe('a');
  });

  it('--ipam-lease-dir: a crashed sandbox\u2019s address leased to another sandbox fails closed for the old pod', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'imdsgate-watcher-leases-'));
    try {
      mkdirSync(join(dir, 'cbr0'));
      const lease = (id: string) => writeFileSync(join(dir, 'cbr0', IP), `${id}\r\neth0`);
      lease('a'.repeat(64));
      const s = setup('auto', [pod('a', 'uid-a')], undefined, 100, dir);
      watcher = s.watcher;
      await s.started();
      expect(await name(s.watcher)).toBe('a');
      s.send('MODIFIED', pod('a', 'uid-a', { deletionTimestamp: '2026-12-02T00:00:00Z' }));
      expect(await name(s.watcher)).toBe('a'); // Terminating, but the lease still names its sandbox
      unlinkSync(join(dir, 'cbr0', IP)); // CNI DEL
      lease('b'.repeat(64)); // CNI ADD of another pod's sandbox; the view still names a
      expect(await name(s.watcher)).toBe('sandbox_changed');
      s.send('ADDED', pod('b', 'uid-b'));
      expect(await name(s.watcher)).toBe('b');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
