// Listing filter: which forwarded paths are directories, how entries map to paths, and what a pod with
// and without a role sees of upstream's listings. Pure; table-driven.
import { describe, expect, it } from 'vitest';
import { createListingFilter, entryPath, filterListing } from '../../../src/imds/listing.js';
import { createPathPolicy } from '../../../src/imds/paths.js';

const policy = createPathPolicy();

describe('isDirectory', () => {
  const withDeny = createPathPolicy({ deny: ['meta-data/network/interfaces/macs/*/vpc-ipv4-cidr-blocks'] });
  it.each([
    ['/', true],
    ['/latest', true],
    ['/latest/', true],
    ['/2009-04-04/', true],
    ['/latest/meta-data', true],
    ['/latest/meta-data/', true],
    ['/1.0/meta-data/', true],
    ['/latest/dynamic', true],
    ['/latest/dynamic/instance-identity/', true],
    ['/latest/meta-data/placement/', true],
    ['/latest/meta-data/security-groups', false],
    ['/latest/meta-data/instance-id', false],
    ['/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/', false],
    ['/latest/dynamic/instance-identity/document', false],
  ])('%s → %s', (path, want) => expect(policy.isDirectory(path)).toBe(want));

  it('a deny glob makes the directories above it listings to filter', () => {
    expect(withDeny.isDirectory('/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/')).toBe(true);
    expect(withDeny.isDirectory('/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/x/')).toBe(
      false,
    );
  });
});

describe('entryPath', () => {
  it.each([
    ['/latest/meta-data/', 'instance-id', '/latest/meta-data/instance-id'],
    ['/latest/meta-data', 'iam/', '/latest/meta-data/iam/'],
    ['/latest/meta-data/public-keys/', '0=my-key', '/latest/meta-data/public-keys/0'],
    ['/', 'latest', '/latest'],
    ['/latest/meta-data/', '', undefined],
    ['/latest/meta-data/', '..', undefined],
    ['/latest/meta-data/', '../user-data', undefined],
    ['/latest/meta-data/', 'a b', undefined],
    ['/latest/meta-data/', 'meta%2Ddata', undefined],
    ['/latest/meta-data/', '/', undefined],
    ['/latest/meta-data/', 'x?y', undefined],
  ])('%s + %j → %s', (dir, entry, want) => expect(entryPath(dir, entry)).toBe(want));
});

const META = [
  'ami-id',
  'block-device-mapping/',
  'events/',
  'hostname',
  'iam/',
  'identity-credentials/',
  'instance-id',
  'ipv6',
  'network/',
  'placement/',
  'public-keys/',
  'security-groups',
  'tags/',
].join('\n');
const META_VISIBLE = ['ami-id', 'block-device-mapping/', 'events/', 'hostname', 'instance-id', 'network/'];
const META_VISIBLE_END = ['placement/', 'security-groups'];

describe('filterListing', () => {
  it.each([
    ['/latest/meta-data/', META, false, [...META_VISIBLE, ...META_VISIBLE_END]],
    [
      '/latest/meta-data/',
      META,
      true,
      [...META_VISIBLE.slice(0, 4), 'iam/', 'instance-id', 'network/', ...META_VISIBLE_END],
    ],
    ['/2021-07-15/meta-data', META, false, [...META_VISIBLE, ...META_VISIBLE_END]],
    ['/latest/', 'dynamic\nmeta-data\nuser-data', false, ['dynamic', 'meta-data']],
    ['/', '1.0\n2007-01-19\nlatest\nmystery', false, ['1.0', '2007-01-19', 'latest']],
    ['/latest/dynamic/', 'fws/\ninstance-identity/\nsecret-thing/', false, ['fws/', 'instance-identity/']],
    ['/latest/meta-data/', 'instance-id\r\niam/\r\n', false, ['instance-id\r', '']],
  ])('%s (role: %s)', async (dir, body, role, want) => {
    const out = await filterListing(Buffer.from(body), dir, policy, () => role);
    expect(out.toString('latin1').split('\n')).toEqual(want);
  });

  it('returns the same buffer when nothing is hidden, and asks for the role only when needed', async () => {
    let asked = 0;
    const body = Buffer.from('availability-zone\nregion');
    expect(await filterListing(body, '/latest/meta-data/placement/', policy, () => (asked++, true))).toBe(
      body,
    );
    await filterListing(Buffer.from('user-data\nmeta-data'), '/latest/', policy, () => (asked++, true));
    expect(asked).toBe(0);
    await filterListing(Buffer.from('iam/'), '/latest/meta-data/', policy, () => (asked++, true));
    expect(asked).toBe(1);
  });

  it('follows --allow-path and --deny-path', async () => {
    const p = createPathPolicy({ allow: ['user-data', 'meta-data/tags/**'], deny: ['meta-data/hostname'] });
    const meta = await filterListing(Buffer.from(META), '/latest/meta-data/', p, () => false);
    expect(meta.toString().split('\n')).toContain('tags/');
    expect(meta.toString().split('\n')).not.toContain('hostname');
    const root = await filterListing(Buffer.from('meta-data\nuser-data'), '/latest/', p, () => false);
    expect(root.toString()).toBe('meta-data\nuser-data');
  });
});

describe('createListingFilter', () => {
  it('answers as filterListing, remembers per directory and body, and follows a changed body', async () => {
    const filter = createListingFilter(policy);
    const dir = '/latest/meta-data/';
    for (const role of [false, true]) {
      const want = await filterListing(Buffer.from(META), dir, policy, () => role);
      const first = await filter(Buffer.from(META), dir, () => role);
      expect(first.equals(want)).toBe(true);
      expect(await filter(Buffer.from(META), dir, () => role)).toBe(first);
    }
    const changed = await filter(Buffer.from('instance-id\ntags/'), dir, () => false);
    expect(changed.toString()).toBe('instance-id');
    const plain = Buffer.from('availability-zone\nregion');
    expect(await filter(plain, '/latest/meta-data/placement/', () => true)).toBe(plain);
  });

  it('asks whether the pod has a role only when an entry depends on it', async () => {
    const filter = createListingFilter(policy);
    let asked = 0;
    await filter(Buffer.from('user-data\nmeta-data'), '/latest/', () => (asked++, true));
    expect(asked).toBe(0);
    await filter(Buffer.from(META), '/latest/meta-data/', () => (asked++, true));
    await filter(Buffer.from(META), '/latest/meta-data/', () => (asked++, false));
    expect(asked).toBe(2);
  });
});
