import { describe, expect, it } from 'vitest';
import { createDenialEvents } from '../../../src/kube/events.js';
import { deps, pod } from '../credentials/helpers.js';

describe('createDenialEvents', () => {
  it('posts one Warning Event per pod and reason per interval, counting the rest as suppressed', async () => {
    const d = deps();
    const posted: { ns: string; reason?: string; message?: string; uid?: string }[] = [];
    const ev = createDenialEvents(undefined, {
      ...d,
      nodeName: 'node-1',
      intervalMs: 60_000,
      create: async (ns, body) =>
        posted.push({ ns, reason: body.reason, message: body.message, uid: body.involvedObject.uid }),
    });
    ev.denied(pod(), 'namespace_forbids', 'no');
    ev.denied(pod(), 'namespace_forbids', 'no');
    ev.denied(pod(), 'invalid_role', 'bad');
    ev.denied(pod({ uid: 'other' }), 'namespace_forbids', 'no');
    d.advance(60_000);
    ev.denied(pod(), 'namespace_forbids', 'no');
    await new Promise((r) => setImmediate(r));
    expect(posted).toHaveLength(4);
    expect(posted[0]).toMatchObject({
      ns: 'team-a',
      reason: 'IMDSGateDenied',
      message: 'no IAM credentials: namespace_forbids: no',
    });
    expect(await d.metric('imdsgate_kube_events_total', { result: 'suppressed' })).toBe(1);
    expect(await d.metric('imdsgate_kube_events_total', { result: 'sent' })).toBe(4);
  });

  it('counts a failed post and never throws', async () => {
    const d = deps();
    const ev = createDenialEvents(undefined, {
      ...d,
      nodeName: 'n',
      create: () => Promise.reject(new Error('forbidden')),
    });
    expect(() => ev.denied(pod(), 'invalid_role', 'x')).not.toThrow();
    await new Promise((r) => setImmediate(r));
    expect(await d.metric('imdsgate_kube_events_total', { result: 'error' })).toBe(1);
  });
});
