import { describe, expect, it } from 'vitest';
import { MAX_VERIFIED_TOKENS, createTokenService, parseTtl } from '../../../src/imds/tokens.js';

const key = Buffer.alloc(32, 7);
const podA = { ip: '10.1.0.5', uid: 'uid-a', pod: 'ns/a' };

function service(start = 1_000_000) {
  let now = start;
  const tokens = createTokenService({ clock: () => now, key });
  return { tokens, advance: (ms: number) => (now += ms) };
}

describe('parseTtl', () => {
  it.each([
    ['1', 1],
    ['300', 300],
    ['21600', 21600],
    ['000300', 300],
  ])('%j → %d', (raw, want) => expect(parseTtl(raw)).toBe(want));

  it.each([
    undefined,
    '',
    '0',
    '21601',
    '30000',
    '-1',
    'abc',
    '1.5',
    ' 5',
    '5 ',
    '1e3',
    '0x10',
    '9999999',
    ['5', '5'],
  ])('rejects %j', (raw) => expect(parseTtl(raw as string | undefined)).toBeUndefined());
});

describe('token service', () => {
  it('accepts its own token for the same binding until the TTL ends', () => {
    const { tokens, advance } = service();
    const t = tokens.mint(podA, 1);
    expect(tokens.verify(t, podA)).toEqual({ ok: true });
    advance(999);
    expect(tokens.verify(t, podA)).toEqual({ ok: true });
    advance(1);
    expect(tokens.verify(t, podA)).toEqual({ ok: false, reason: 'expired' });
  });

  it('is bound to source IP, pod UID and pod name', () => {
    const { tokens } = service();
    const t = tokens.mint(podA, 300);
    expect(tokens.verify(t, { ...podA, ip: '10.1.0.6' })).toEqual({ ok: false, reason: 'bad_signature' });
    expect(tokens.verify(t, { ...podA, uid: 'uid-new' })).toEqual({ ok: false, reason: 'bad_signature' });
    expect(tokens.verify(t, { ...podA, pod: 'ns/b' })).toEqual({ ok: false, reason: 'bad_signature' });
  });

  it('differs per mint and cannot be extended by editing the expiry', () => {
    const { tokens } = service();
    const t1 = tokens.mint(podA, 300);
    expect(tokens.mint(podA, 300)).not.toBe(t1);
    const [v, exp, n, sig] = t1.split('.') as [string, string, string, string];
    const forged = [v, String(Number(exp) + 1e9), n, sig].join('.');
    expect(tokens.verify(forged, podA)).toEqual({ ok: false, reason: 'bad_signature' });
  });

  it('rejects tokens from another key (agent restart)', () => {
    const { tokens } = service();
    const other = createTokenService({ clock: () => 1_000_000, key: Buffer.alloc(32, 8) });
    expect(tokens.verify(other.mint(podA, 300), podA)).toEqual({ ok: false, reason: 'bad_signature' });
  });

  it.each(['', 'abc', 'v1.1.2', 'v2.1.n.sig', 'v1.x.n.sig', 'v1.1.n.sig.extra', `v1.1.n.${'a'.repeat(300)}`])(
    'rejects malformed token %j',
    (t) => {
      const { tokens } = service();
      expect(tokens.verify(t, podA).ok).toBe(false);
    },
  );

  it('generates a random key when none is injected', () => {
    const a = createTokenService({ clock: () => 0 });
    const b = createTokenService({ clock: () => 0 });
    expect(b.verify(a.mint(podA, 60), podA).ok).toBe(false);
    expect(a.verify(a.mint(podA, 60), podA).ok).toBe(true);
  });
});

// A token verified once is remembered (the HMAC runs once per token and binding); the memo must never
// widen what a token is good for.
describe('token service memo of verified tokens', () => {
  it('still refuses a remembered token from another binding', () => {
    const { tokens } = service();
    const t = tokens.mint(podA, 300);
    expect(tokens.verify(t, podA)).toEqual({ ok: true });
    expect(tokens.verify(t, { ...podA, ip: '10.1.0.6' })).toEqual({ ok: false, reason: 'bad_signature' });
    expect(tokens.verify(t, { ...podA, uid: 'uid-new' })).toEqual({ ok: false, reason: 'bad_signature' });
    expect(tokens.verify(t, { ...podA, pod: 'ns/b' })).toEqual({ ok: false, reason: 'bad_signature' });
    expect(tokens.verify(t, podA)).toEqual({ ok: true });
  });

  it('expires a remembered token at its TTL', () => {
    const { tokens, advance } = service();
    const t = tokens.mint(podA, 2);
    expect(tokens.verify(t, podA)).toEqual({ ok: true });
    advance(1999);
    expect(tokens.verify(t, podA)).toEqual({ ok: true });
    advance(1);
    expect(tokens.verify(t, podA)).toEqual({ ok: false, reason: 'expired' });
    expect(tokens.verify(t, podA)).toEqual({ ok: false, reason: 'expired' });
  });

  it('does not remember failures: an edited remembered token is checked in full', () => {
    const { tokens } = service();
    const t = tokens.mint(podA, 300);
    expect(tokens.verify(t, podA)).toEqual({ ok: true });
    const [v, exp, n, sig] = t.split('.') as [string, string, string, string];
    expect(tokens.verify([v, String(Number(exp) + 1e9), n, sig].join('.'), podA)).toEqual({
      ok: false,
      reason: 'bad_signature',
    });
  });

  it('stays bounded: tokens keep verifying after the memo is dropped', () => {
    const { tokens } = service();
    const all = Array.from({ length: MAX_VERIFIED_TOKENS + 10 }, (_, i) => ({
      b: { ...podA, ip: `10.2.${i >> 8}.${i & 255}` },
      t: '',
    }));
    for (const x of all) x.t = tokens.mint(x.b, 300);
    for (const x of all) expect(tokens.verify(x.t, x.b).ok).toBe(true);
    for (const x of all.slice(0, 20)) expect(tokens.verify(x.t, x.b).ok).toBe(true);
    expect(tokens.verify(all[0]!.t, all[1]!.b)).toEqual({ ok: false, reason: 'bad_signature' });
  });
});
