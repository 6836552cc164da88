// The sandbox binding's decision (judge) as a table, and the records kept by SandboxBindings with a
// scripted node: what a request gets for every mode, record, current interface and Terminating state.
import { describe, expect, it } from 'vitest';
import {
  REBIND_AFTER_MS,
  SandboxBindings,
  judge,
  type Binding,
  type SandboxBindingMode,
  type SandboxSignal,
} from '../../../src/pods/sandbox.js';

const A: SandboxSignal = { kind: 'route', ifindex: 7, iface: 'cali0a' };
const B: SandboxSignal = { kind: 'route', ifindex: 9, iface: 'cali0b' };
/** host-local leases (leases.ts): sandbox IDs, as containerd writes them. */
const L1: SandboxSignal = { kind: 'lease', sandboxId: 'a'.repeat(64) };
const L2: SandboxSignal = { kind: 'lease', sandboxId: 'b'.repeat(64) };
const T = 1_000_000;
const rec = (signal: SandboxSignal | undefined, mismatch?: Binding['mismatch']): Binding =>
  mismatch === undefined ? { signal } : { signal, mismatch };

describe('judge', () => {
  const table: [
    string,
    SandboxBindingMode,
    boolean,
    Binding | undefined,
    SandboxSignal | undefined,
    string,
  ][] = [
    ['off serves whatever the node says', 'off', true, rec(A), B, 'bound'],
    ['quarantine serves a live pod', 'quarantine', false, undefined, undefined, 'bound'],
    ['quarantine refuses a Terminating pod', 'quarantine', true, undefined, undefined, 'address_quarantined'],
    ['auto without a recorded route serves a live pod', 'auto', false, rec(undefined), B, 'bound'],
    [
      'auto without a recorded route refuses Terminating',
      'auto',
      true,
      rec(undefined),
      A,
      'address_quarantined',
    ],
    ['auto, same interface', 'auto', false, rec(A), A, 'bound'],
    ['auto, same interface, Terminating: still its sandbox', 'auto', true, rec(A), A, 'bound'],
    ['auto, new interface', 'auto', false, rec(A), B, 'sandbox_changed'],
    ['auto, new interface, Terminating', 'auto', true, rec(A), B, 'sandbox_changed'],
    ['auto, route gone', 'auto', false, rec(A), undefined, 'sandbox_changed'],
    ['auto, same name but a new ifindex', 'auto', false, rec(A), { ...A, ifindex: 8 }, 'sandbox_changed'],
    ['route, same interface', 'route', false, rec(A), A, 'bound'],
    ['route, nothing recorded, no route now', 'route', false, rec(undefined), undefined, 'no_sandbox_signal'],
    ['route, nothing recorded, a route now', 'route', false, rec(undefined), B, 'no_sandbox_signal'],
    ['route, no record at all', 'route', false, undefined, A, 'no_sandbox_signal'],
    ['auto, lease names the same sandbox', 'auto', false, rec(L1), L1, 'bound'],
    ['auto, lease same sandbox, Terminating: still its sandbox', 'auto', true, rec(L1), L1, 'bound'],
    ['auto, lease names another sandbox (crash, IP reused)', 'auto', false, rec(L1), L2, 'sandbox_changed'],
    ['auto, lease another sandbox, Terminating', 'auto', true, rec(L1), L2, 'sandbox_changed'],
    ['auto, lease gone (CNI DEL)', 'auto', false, rec(L1), undefined, 'sandbox_changed'],
    ['auto, lease gone, Terminating', 'auto', true, rec(L1), undefined, 'sandbox_changed'],
    ['auto, a route now where a lease was recorded', 'auto', false, rec(L1), A, 'sandbox_changed'],
    ['auto, a lease now where a route was recorded', 'auto', false, rec(A), L1, 'sandbox_changed'],
    ['auto, no lease when learned: quarantine serves live', 'auto', false, rec(undefined), L1, 'bound'],
    ['auto, no lease when learned: Terminating', 'auto', true, rec(undefined), L1, 'address_quarantined'],
    ['route, lease names the same sandbox', 'route', false, rec(L1), L1, 'bound'],
    ['off ignores a changed lease', 'off', false, rec(L1), L2, 'bound'],
  ];
  it.each(table)('%s', (_name, mode, terminating, recorded, current, want) => {
    const v = judge(mode, terminating, recorded, current, T);
    expect(v.kind === 'refused' ? v.reason : v.kind).toBe(want);
  });

  it('settles a lease mismatch like a route one: refused until REBIND_AFTER_MS, then rebinds', () => {
    expect(judge('auto', false, rec(L1), L2, T)).toEqual({
      kind: 'refused',
      reason: 'sandbox_changed',
      binding: rec(L1, { key: `lease ${'b'.repeat(64)}`, since: T }),
    });
    const settled = rec(L1, { key: `lease ${'b'.repeat(64)}`, since: T - REBIND_AFTER_MS });
    expect(judge('auto', false, settled, L2, T)).toEqual({ kind: 'rebind', binding: { signal: L2 } });
    expect(judge('auto', true, settled, L2, T)).toMatchObject({ kind: 'refused' });
  });

  it('starts the settle clock on the first mismatch and restarts it when the interface changes again', () => {
    const v = judge('auto', false, rec(A), B, T);
    expect(v).toEqual({
      kind: 'refused',
      reason: 'sandbox_changed',
      binding: rec(A, { key: 'route 9', since: T }),
    });
    const again = judge('auto', false, rec(A, { key: 'route 8', since: T - REBIND_AFTER_MS }), B, T);
    expect(again).toMatchObject({ kind: 'refused', binding: { mismatch: { key: 'route 9', since: T } } });
  });

  it('rebinds a live pod once the same new interface has lasted REBIND_AFTER_MS, never a Terminating one', () => {
    const waiting = rec(A, { key: 'route 9', since: T - REBIND_AFTER_MS + 1 });
    expect(judge('auto', false, waiting, B, T)).toEqual({ kind: 'refused', reason: 'sandbox_changed' });
    const settled = rec(A, { key: 'route 9', since: T - REBIND_AFTER_MS });
    expect(judge('auto', false, settled, B, T)).toEqual({ kind: 'rebind', binding: rec(B) });
    expect(judge('auto', true, settled, B, T)).toEqual({ kind: 'refused', reason: 'sandbox_changed' });
    expect(judge('route', false, rec(undefined, { key: 'route 9', since: 0 }), B, T)).toEqual({
      kind: 'rebind',
      binding: rec(B),
    });
  });
});

function node(initial: Record<string, SandboxSignal>) {
  const routes = new Map(Object.entries(initial));
  let reads = 0;
  return {
    routes,
    reads: () => reads,
    lookup: {
      signalFor: (ip: string) => {
        reads++;
        return routes.get(ip);
      },
    },
  };
}

describe('SandboxBindings', () => {
  it('records the interface when a pod is learned and refuses a request from a newer one', () => {
    const n = node({ '10.1.0.5': A });
    const b = new SandboxBindings('auto', n.lookup);
    b.learn('uid-a', '10.1.0.5');
    expect(b.check({ uid: 'uid-a' }, '10.1.0.5', T)).toBeUndefined();
    n.routes.set('10.1.0.5', B); // A's veth gone, B's sandbox has the IP
    expect(b.check({ uid: 'uid-a' }, '10.1.0.5', T)).toBe('sandbox_changed');
    b.learn('uid-b', '10.1.0.5');
    expect(b.check({ uid: 'uid-b' }, '10.1.0.5', T)).toBeUndefined();
  });

  it('keeps the first record: learning again does not rebind', () => {
    const n = node({ '10.1.0.5': A });
    const b = new SandboxBindings('auto', n.lookup);
    b.learn('uid-a', '10.1.0.5');
    n.routes.set('10.1.0.5', B);
    b.learn('uid-a', '10.1.0.5');
    expect(b.check({ uid: 'uid-a' }, '10.1.0.5', T)).toBe('sandbox_changed');
  });

  it('rebinds after the settle time and then serves the new interface', () => {
    const n = node({ '10.1.0.5': A });
    const b = new SandboxBindings('auto', n.lookup);
    b.learn('uid-a', '10.1.0.5');
    n.routes.set('10.1.0.5', B);
    expect(b.check({ uid: 'uid-a' }, '10.1.0.5', T)).toBe('sandbox_changed');
    expect(b.check({ uid: 'uid-a' }, '10.1.0.5', T + REBIND_AFTER_MS)).toBeUndefined();
    expect(b.check({ uid: 'uid-a' }, '10.1.0.5', T + REBIND_AFTER_MS + 1)).toBeUndefined();
  });

  it('quarantines an address its pod left until another pod claims it', () => {
    const b = new SandboxBindings('quarantine', node({}).lookup);
    b.learn('uid-a', '10.1.0.5');
    expect(b.isQuarantined('10.1.0.5')).toBe(false);
    b.forget('uid-a', '10.1.0.5');
    expect(b.isQuarantined('10.1.0.5')).toBe(true);
    b.learn('uid-a', '10.1.0.5'); // the same pod does not lift it
    expect(b.isQuarantined('10.1.0.5')).toBe(true);
    b.learn('uid-b', '10.1.0.5');
    expect(b.isQuarantined('10.1.0.5')).toBe(false);
  });

  it('bounds the quarantine list, dropping the oldest entries', () => {
    const b = new SandboxBindings('quarantine', node({}).lookup);
    for (let i = 0; i < 5000; i++) b.forget(`u${i}`, `fd00::${i.toString(16)}`);
    expect(b.isQuarantined('fd00::0')).toBe(false);
    expect(b.isQuarantined(`fd00::${(4999).toString(16)}`)).toBe(true);
  });

  it('reads the node only where a signal is in use', () => {
    const n = node({});
    const q = new SandboxBindings('quarantine', n.lookup);
    q.learn('uid-a', '10.1.0.5');
    q.check({ uid: 'uid-a' }, '10.1.0.5', T);
    expect(n.reads()).toBe(0);
    const auto = new SandboxBindings('auto', n.lookup);
    auto.learn('uid-a', '10.1.0.5'); // no route: quarantine semantics, no further reads
    auto.check({ uid: 'uid-a' }, '10.1.0.5', T);
    expect(n.reads()).toBe(1);
    const off = new SandboxBindings('off', n.lookup);
    off.learn('uid-a', '10.1.0.5');
    off.forget('uid-a', '10.1.0.5');
    expect(off.check({ uid: 'uid-a', terminating: true }, '10.1.0.5', T)).toBeUndefined();
    expect(off.isQuarantined('10.1.0.5')).toBe(false);
    expect(n.reads()).toBe(1);
  });

  it('an interface routing several pods (one shared device) is no signal: those IPs fall back to quarantine', () => {
    const shared: SandboxSignal = { kind: 'route', ifindex: 3, iface: 'cilium_host' };
    const n = node({ '10.1.0.5': shared, '10.1.0.6': shared });
    const b = new SandboxBindings('auto', n.lookup);
    b.learn('uid-a', '10.1.0.5');
    expect(b.usesSignal('uid-a', '10.1.0.5')).toBe(true);
    b.learn('uid-b', '10.1.0.6');
    for (const [uid, ip] of [
      ['uid-a', '10.1.0.5'],
      ['uid-b', '10.1.0.6'],
    ] as const) {
      expect(b.usesSignal(uid, ip)).toBe(false);
      expect(b.check({ uid }, ip, T)).toBeUndefined();
      expect(b.check({ uid, terminating: true }, ip, T)).toBe('address_quarantined');
    }
    // Remembered: a later pod behind the same device gets no signal either, even alone.
    b.forget('uid-a', '10.1.0.5');
    b.forget('uid-b', '10.1.0.6');
    b.learn('uid-c', '10.1.0.5');
    expect(b.usesSignal('uid-c', '10.1.0.5')).toBe(false);
    const r = new SandboxBindings('route', n.lookup);
    r.learn('uid-a', '10.1.0.5');
    r.learn('uid-b', '10.1.0.6');
    expect(r.check({ uid: 'uid-a' }, '10.1.0.5', T)).toBe('no_sandbox_signal');
  });

  it("one pod's IPv4 and IPv6 through its own veth are not a shared interface", () => {
    const n = node({ '10.1.0.5': A, 'fd00::5': A });
    const b = new SandboxBindings('auto', n.lookup);
    b.learn('uid-a', '10.1.0.5');
    b.learn('uid-a', 'fd00::5');
    expect(b.usesSignal('uid-a', '10.1.0.5')).toBe(true);
    expect(b.usesSignal('uid-a', 'fd00::5')).toBe(true);
  });

  it('never rebinds a pod onto an interface recorded for another pod', () => {
    const n = node({ '10.1.0.5': A, '10.1.0.9': B });
    const b = new SandboxBindings('auto', n.lookup);
    b.learn('uid-a', '10.1.0.5');
    b.learn('uid-b', '10.1.0.9');
    n.routes.set('10.1.0.5', B);
    expect(b.check({ uid: 'uid-a' }, '10.1.0.5', T)).toBe('sandbox_changed');
    expect(b.check({ uid: 'uid-a' }, '10.1.0.5', T + REBIND_AFTER_MS)).toBe('sandbox_changed');
  });

  it('a crashed sandbox on a bridge CNI: the lease names the newcomer, the old pod is refused', () => {
    const n = node({ '10.1.0.5': L1 });
    const b = new SandboxBindings('auto', n.lookup);
    b.learn('uid-a', '10.1.0.5');
    expect(b.usesSignal('uid-a', '10.1.0.5')).toBe(true);
    expect(b.check({ uid: 'uid-a' }, '10.1.0.5', T)).toBeUndefined();
    n.routes.delete('10.1.0.5'); // CNI DEL after the crash
    expect(b.check({ uid: 'uid-a', terminating: true }, '10.1.0.5', T)).toBe('sandbox_changed');
    n.routes.set('10.1.0.5', L2); // CNI ADD of another pod's sandbox
    expect(b.check({ uid: 'uid-a' }, '10.1.0.5', T)).toBe('sandbox_changed');
    b.learn('uid-b', '10.1.0.5'); // the view catches up
    expect(b.check({ uid: 'uid-b' }, '10.1.0.5', T)).toBeUndefined();
  });

  it('leases naming the same sandbox for two IPs of one pod, or many pods, never count as shared', () => {
    const n = node({ '10.1.0.5': L1, 'fd00::5': L1, '10.1.0.6': L2 });
    const b = new SandboxBindings('auto', n.lookup);
    b.learn('uid-a', '10.1.0.5');
    b.learn('uid-a', 'fd00::5');
    b.learn('uid-b', '10.1.0.6');
    for (const [uid, ip] of [
      ['uid-a', '10.1.0.5'],
      ['uid-a', 'fd00::5'],
      ['uid-b', '10.1.0.6'],
    ] as const) {
      expect(b.usesSignal(uid, ip)).toBe(true);
      expect(b.check({ uid, terminating: true }, ip, T)).toBeUndefined();
    }
  });
});
