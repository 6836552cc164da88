import { describe, expect, it } from 'vitest';
import { PodIndex, canonicalIp, toLivePod, type PodLike } from '../../../src/pods/index.js';

function pod(
  uid: string,
  ip: string | undefined,
  over: Partial<PodLike['status']> & { hostNetwork?: boolean; ann?: Record<string, string> } = {},
): PodLike {
  const { hostNetwork, ann, ...status } = over;
  return {
    metadata: { uid, name: `p-${uid}`, namespace: 'ns', annotations: ann ?? {} },
    spec: { serviceAccountName: 'sa', nodeName: 'n1', ...(hostNetwork !== undefined ? { hostNetwork } : {}) },
    status: { phase: 'Running', ...(ip !== undefined ? { podIP: ip } : {}), ...status },
  };
}

describe('canonicalIp', () => {
  it.each([
    ['169.254.1.2', '169.254.1.2'],
    ['::ffff:169.254.1.2', '169.254.1.2'],
    ['FD00:0:0::0001', 'fd00::1'],
    ['[fd00::1]', 'fd00::1'],
    ['not-an-ip', undefined],
    ['', undefined],
  ])('%s → %s', (raw, want) => expect(canonicalIp(raw)).toBe(want));
});

describe('toLivePod', () => {
  it.each([
    ['running with IP', pod('a', '169.254.1.2'), true],
    ['pending with IP', pod('a', '169.254.1.2', { phase: 'Pending' }), true],
    ['no IP yet', pod('a', undefined), false],
    ['hostNetwork', pod('a', '169.254.1.2', { hostNetwork: true }), false],
    ['Succeeded', pod('a', '169.254.1.2', { phase: 'Succeeded' }), false],
    ['Failed', pod('a', '169.254.1.2', { phase: 'Failed' }), false],
    ['no uid', { metadata: { name: 'x', namespace: 'y' }, status: { podIP: '169.254.1.2' } }, false],
    ['empty object', {}, false],
    ['garbage IP only', pod('a', 'zzz'), false],
  ])('%s → live=%s', (_n, p, live) => expect('skip' in toLivePod(p)).toBe(!live));

  it('indexes IPv4 and IPv6 from podIPs, keeps only annotations the decision reads, defaults the SA', () => {
    const p = toLivePod({
      metadata: {
        uid: 'u',
        name: 'n',
        namespace: 'ns',
        annotations: {
          'iam.amazonaws.com/role': 'app',
          'kubectl.kubernetes.io/last-applied-configuration': '{}',
        },
      },
      status: { podIP: '169.254.1.2', podIPs: [{ ip: '169.254.1.2' }, { ip: 'FD00::0002' }] },
    });
    expect(p).toMatchObject({
      ips: ['169.254.1.2', 'fd00::2'],
      serviceAccount: 'default',
      annotations: { 'iam.amazonaws.com/role': 'app' },
    });
    expect(Object.keys((p as { annotations: object }).annotations)).toHaveLength(1);
  });
});

describe('PodIndex', () => {
  it('finds a pod by either IP family, with the asked IP', () => {
    const idx = new PodIndex();
    idx.apply(pod('a', '169.254.1.2', { podIPs: [{ ip: '169.254.1.2' }, { ip: 'fd00::2' }] }));
    expect(idx.lookup('169.254.1.2')).toMatchObject({ kind: 'found', pod: { uid: 'a', ip: '169.254.1.2' } });
    expect(idx.lookup('fd00:0::2')).toMatchObject({ kind: 'found', pod: { uid: 'a', ip: 'fd00::2' } });
    expect(idx.lookup('::ffff:169.254.1.2')).toMatchObject({ kind: 'found' });
    expect(idx.lookup('169.254.1.3')).toEqual({ kind: 'unknown' });
  });

  it('hands out the same object for a pod until it changes (downstream memos rely on it)', () => {
    const idx = new PodIndex();
    const podAt = (ip: string) => {
      const r = idx.lookup(ip);
      return r.kind === 'found' ? r.pod : undefined;
    };
    idx.apply(pod('a', '169.254.1.2', { podIPs: [{ ip: '169.254.1.2' }, { ip: 'fd00::2' }] }));
    const first = podAt('169.254.1.2');
    expect(first).toBeDefined();
    expect(podAt('169.254.1.2')).toBe(first);
    expect(podAt('fd00::2')).toMatchObject({ uid: 'a', ip: 'fd00::2' });
    idx.apply(pod('a', '169.254.1.2', { ann: { 'iam.amazonaws.com/role': 'app' } }));
    expect(podAt('169.254.1.2')).not.toBe(first);
    expect(podAt('169.254.1.2')?.annotations).toEqual({ 'iam.amazonaws.com/role': 'app' });
  });

  it('IP reuse: the new pod gets its own identity, never the old one', () => {
    const idx = new PodIndex();
    idx.apply(pod('old', '169.254.1.2', { ann: { 'iam.amazonaws.com/role': 'old-role' } }));
    expect(idx.apply(pod('old', '169.254.1.2', { phase: 'Succeeded' }))).toMatchObject({ kind: 'removed' });
    expect(idx.lookup('169.254.1.2')).toEqual({ kind: 'unknown' });
    idx.apply(pod('new', '169.254.1.2', { ann: { 'iam.amazonaws.com/role': 'new-role' } }));
    expect(idx.lookup('169.254.1.2')).toMatchObject({
      kind: 'found',
      pod: { uid: 'new', annotations: { 'iam.amazonaws.com/role': 'new-role' } },
    });
  });

  it('two live pods on one IP: conflict until one goes away', () => {
    const idx = new PodIndex();
    idx.apply(pod('a', '169.254.1.2'));
    idx.apply(pod('b', '169.254.1.2'));
    expect(idx.lookup('169.254.1.2')).toEqual({ kind: 'conflict' });
    idx.remove('a');
    expect(idx.lookup('169.254.1.2')).toMatchObject({ kind: 'found', pod: { uid: 'b' } });
  });

  it('a pod that changes IP is no longer found on the old one', () => {
    const idx = new PodIndex();
    idx.apply(pod('a', '169.254.1.2'));
    expect(idx.apply(pod('a', '169.254.1.3'))).toMatchObject({ kind: 'updated' });
    expect(idx.lookup('169.254.1.2')).toEqual({ kind: 'unknown' });
    expect(idx.lookup('169.254.1.3')).toMatchObject({ kind: 'found' });
  });

  it('reports annotation changes as updates and identical re-applies as none', () => {
    const idx = new PodIndex();
    idx.apply(pod('a', '169.254.1.2'));
    expect(idx.apply(pod('a', '169.254.1.2')).kind).toBe('none');
    expect(idx.apply(pod('a', '169.254.1.2', { ann: { 'iam.amazonaws.com/role': 'x' } })).kind).toBe(
      'updated',
    );
  });

  it('replace() (a relist) removes pods that vanished while the watch was down', () => {
    const idx = new PodIndex();
    idx.apply(pod('a', '169.254.1.2'));
    idx.apply(pod('b', '169.254.1.3'));
    const changes = idx.replace([pod('b', '169.254.1.3'), pod('c', '169.254.1.2')]);
    expect(changes.map((c) => c.kind).sort()).toEqual(['added', 'removed']);
    expect(idx.lookup('169.254.1.2')).toMatchObject({ kind: 'found', pod: { uid: 'c' } });
    expect(idx.size).toBe(2);
  });

  it('ignores odd specs without throwing', () => {
    const idx = new PodIndex();
    for (const odd of [
      {},
      { metadata: {} },
      { status: { podIPs: [{}] } },
      pod('x', '1.2.3.4.5'),
    ] as PodLike[]) {
      expect(() => idx.apply(odd)).not.toThrow();
    }
    expect(idx.size).toBe(0);
    expect(idx.lookup('garbage')).toEqual({ kind: 'unknown' });
  });
});
