// Forwarded listings through the front door: every entry a pod is shown, it can then read, at every
// version prefix and spelling the canonicaliser accepts; a pod with no role sees no iam/.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { harness, standardPods, type Harness } from './fakes.js';

const WEB = '10.0.0.1'; // has a role
const BATCH = '10.0.0.2'; // has none
const UNKNOWN = '10.0.0.9';
const META =
  'ami-id\nevents/\nhostname\niam/\nidentity-credentials/\ninstance-id\nplacement/\npublic-keys/\ntags/';
const LISTINGS: Record<string, string> = {
  '': '1.0\n2007-01-19\nlatest',
  latest: 'dynamic\nmeta-data\nuser-data',
  'meta-data': META,
  'meta-data/events': 'maintenance/',
  'meta-data/events/maintenance': 'history\nscheduled',
  'meta-data/placement': 'availability-zone\nregion',
  dynamic: 'fws/\ninstance-identity/',
  'dynamic/fws': 'instance-monitoring',
  'dynamic/instance-identity': 'document\npkcs7\nrsa2048\nsignature',
};

let h: Harness;
beforeEach(() => {
  h = harness();
  standardPods(h);
  // A fake IMDS: listings by path (any version), everything else a leaf value.
  h.setUpstream(async (wire) => {
    const rest = wire.replace(/^\/(latest|1\.0|\d{4}-\d{2}-\d{2})\/?/, '').replace(/\/$/, '');
    const key = wire === '/' ? '' : /^\/[^/]+\/?$/.test(wire) ? 'latest' : rest;
    const body = LISTINGS[key] ?? 'leaf-value';
    return { status: 200, contentType: 'text/plain', body: Buffer.from(body) };
  });
});
afterEach(() => h.app.close());

const get = (url: string, ip: string) => h.app.inject({ method: 'GET', url, remoteAddress: ip });
const lines = (body: string) => body.split('\n');

describe('meta-data listings', () => {
  it.each([
    '/latest/meta-data',
    '/latest/meta-data/',
    '/2016-09-02/meta-data/',
    '/1.0/meta-data',
    '/latest/meta%2Ddata/',
    '/latest/%6Deta-data/',
  ])('%s: no concealed entry; iam/ only for the pod with a role', async (url) => {
    const web = await get(url, WEB);
    expect(web.statusCode).toBe(200);
    expect(lines(web.body)).toEqual(['ami-id', 'events/', 'hostname', 'iam/', 'instance-id', 'placement/']);
    for (const ip of [BATCH, UNKNOWN]) {
      const other = await get(url, ip);
      expect(lines(other.body)).toEqual(['ami-id', 'events/', 'hostname', 'instance-id', 'placement/']);
    }
  });

  it('a HEAD gets the length of the filtered listing', async () => {
    const head = await h.app.inject({ method: 'HEAD', url: '/latest/meta-data/', remoteAddress: BATCH });
    const body = (await get('/latest/meta-data/', BATCH)).body;
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength(body)));
  });

  it('version roots hide user-data', async () => {
    for (const url of ['/latest', '/latest/', '/2009-04-04/']) {
      expect(lines((await get(url, WEB)).body)).toEqual(['dynamic', 'meta-data']);
    }
  });

  it('a leaf is never filtered, even when it has several lines', async () => {
    h.setUpstream(async () => ({ status: 200, contentType: 'text/plain', body: Buffer.from('sg-a\nsg-b') }));
    expect((await get('/latest/meta-data/security-groups', BATCH)).body).toBe('sg-a\nsg-b');
  });
});

describe('a crawler sees a consistent tree', () => {
  /** Walks every listed entry as crawlers do, failing on the first listed entry that is not 200. */
  async function crawl(ip: string): Promise<string[]> {
    const seen: string[] = [];
    const walk = async (url: string): Promise<void> => {
      const r = await get(url, ip);
      if (r.statusCode !== 200) throw new Error(`${url} was listed but answered ${r.statusCode}`);
      seen.push(url);
      if (!url.endsWith('/')) return;
      for (const entry of lines(r.body)) await walk(`${url}${entry.replace(/=.*/, '')}`);
    };
    for (const top of ['/latest/meta-data/', '/latest/dynamic/']) await walk(top);
    return seen;
  }

  it.each([
    ['with a role', WEB, true],
    ['without a role', BATCH, false],
  ])('%s', async (_name, ip, hasIam) => {
    const seen = await crawl(ip);
    expect(seen).toContain('/latest/dynamic/instance-identity/document');
    expect(seen.includes('/latest/meta-data/iam/security-credentials/app-role')).toBe(hasIam);
    expect(seen.some((u) => /identity-credentials|user-data|public-keys|tags/.test(u))).toBe(false);
  });
});
