import { describe, expect, it } from 'vitest';
import { MAX_TARGET_LENGTH, canonicalize, toWire } from '../../../src/imds/canonical.js';

describe('canonicalize', () => {
  it.each([
    ['/', '/'],
    ['/latest', '/latest'],
    ['/latest/', '/latest/'],
    ['/latest/meta-data/iam/security-credentials/', '/latest/meta-data/iam/security-credentials/'],
    ['/latest/meta-data/instance-id', '/latest/meta-data/instance-id'],
    ['/2007-01-19/meta-data/', '/2007-01-19/meta-data/'],
    // Encoded unreserved characters are decoded once (RFC 3986 §6.2.2.2), so a spelling cannot dodge
    // the credential path classification.
    ['/latest/meta-data/iam/%73ecurity-credentials', '/latest/meta-data/iam/security-credentials'],
    ['/latest/meta-data/iam/security%2Dcredentials/', '/latest/meta-data/iam/security-credentials/'],
    ['/latest/meta-data/tags/instance/a%20b', '/latest/meta-data/tags/instance/a b'],
    ['/latest/meta-data/public-keys/0=my-key', '/latest/meta-data/public-keys/0=my-key'],
  ])('%s → %s', (target, path) => {
    expect(canonicalize(target)).toEqual({ ok: true, path });
  });

  it.each([
    ['', 'empty target'],
    ['latest/meta-data', 'not origin-form'],
    ['*', 'not origin-form'],
    ['http://169.254.169.254/latest/meta-data/', 'not origin-form'],
    ['169.254.169.254:80', 'not origin-form'],
    ['/latest/meta-data/?x=1', 'query string'],
    ['/latest/meta-data/iam/security-credentials?', 'query string'],
    ['/latest/meta-data/#frag', 'fragment'],
    ['/latest/meta-data/iam/security-credentials;x=1/role', 'path parameter'],
    ['/latest/meta-data\\iam', 'backslash'],
    ['/latest/meta-data/iam/security-credentials%2Frole', 'encoded delimiter %2F'],
    ['/latest/meta-data/iam/security-credentials%2frole', 'encoded delimiter %2F'],
    ['/latest/meta-data/%2E%2E/iam', 'encoded delimiter %2E'],
    ['/latest/meta-data%5Ciam', 'encoded delimiter %5C'],
    ['/latest/meta-data/%252F', 'encoded delimiter %25'],
    ['/latest/meta-data/%3Bx', 'encoded delimiter %3B'],
    ['/latest/meta-data/%3F', 'encoded delimiter %3F'],
    ['/latest/meta-data/%23', 'encoded delimiter %23'],
    ['/latest/meta-data/%00', 'encoded control or non-ASCII byte'],
    ['/latest/meta-data/%0A', 'encoded control or non-ASCII byte'],
    ['/latest/meta-data/%7F', 'encoded control or non-ASCII byte'],
    ['/latest/meta-data/%C3%A9', 'encoded control or non-ASCII byte'],
    ['/latest/meta-data/%', 'invalid percent-encoding'],
    ['/latest/meta-data/%G1', 'invalid percent-encoding'],
    ['/latest/meta-data/%4', 'invalid percent-encoding'],
    ['/latest/meta-data/\u00e9', 'character not allowed in a path'],
    ['/latest/meta-data/\u0000', 'character not allowed in a path'],
    ['/latest/meta-data/a b', 'character not allowed in a path'],
    ['/latest/meta-data/"x"', 'character not allowed in a path'],
    ['/latest/meta-data/<x>', 'character not allowed in a path'],
    ['/latest/meta-data/{x}', 'character not allowed in a path'],
    ['//latest/meta-data', 'empty segment'],
    ['/latest//meta-data/iam/security-credentials/', 'empty segment'],
    ['/latest/meta-data//', 'empty segment'],
    ['/latest/./meta-data/', 'dot segment'],
    ['/latest/meta-data/../meta-data/iam/', 'dot segment'],
    ['/latest/meta-data/..', 'dot segment'],
    ['/..', 'dot segment'],
    ['/.', 'dot segment'],
    ['/latest/meta-data/%2e', 'encoded delimiter %2E'],
    [`/${'a'.repeat(MAX_TARGET_LENGTH)}`, 'target too long'],
  ])('refuses %j (%s)', (target, reason) => {
    expect(canonicalize(target)).toEqual({ ok: false, reason });
  });
});

describe('toWire', () => {
  it.each([
    ['/latest/meta-data/instance-id', '/latest/meta-data/instance-id'],
    ['/latest/meta-data/tags/instance/a b', '/latest/meta-data/tags/instance/a%20b'],
    ['/latest/x"<>', '/latest/x%22%3C%3E'],
  ])('%s → %s', (path, wire) => {
    expect(toWire(path)).toBe(wire);
  });

  it('re-canonicalises to the same path (round trip)', () => {
    for (const p of ['/latest/meta-data/tags/instance/a b', '/latest/x"<>{}|^`', '/1.0/meta-data/']) {
      expect(canonicalize(toWire(p))).toEqual({ ok: true, path: p });
    }
  });
});
