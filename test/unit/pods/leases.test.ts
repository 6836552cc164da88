// host-local's lease files (src/pods/leases.ts) in a temporary dataDir laid out as the plugin writes it:
// `<dir>/<network>/<ip>` holding `<container ID>\r\n<ifname>`, plus its `lock` and `last_reserved_ip.0`.
// Anything else in a lease's place is no signal, never a partly trusted one.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execaSync } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_LEASE_BYTES, createLeaseReader, firstSignal, parseLease } from '../../../src/pods/leases.js';

const ID_A = 'a1'.repeat(32);
const ID_B = 'b2'.repeat(32);
const lease = (sandboxId: string) => ({ kind: 'lease', sandboxId });

describe('parseLease', () => {
  const table: [string, string, string | undefined][] = [
    ['ID, CRLF and ifname (plugins v0.9+)', `${ID_A}\r\neth0`, ID_A],
    ['ID alone (older plugins)', ID_A, ID_A],
    ['ID and LF', `${ID_A}\neth0`, ID_A],
    ['ID and a trailing line break', `${ID_A}\r\n`, ID_A],
    ['empty', '', undefined],
    ['a third line', `${ID_A}\r\neth0\r\nmore`, undefined],
    ['a space in the ID', `${ID_A} x\r\neth0`, undefined],
    ['a slash in the ID', `../${ID_A}`, undefined],
    ['an ID too long', 'a'.repeat(256), undefined],
    ['an ifname too long', `${ID_A}\r\n${'e'.repeat(16)}`, undefined],
    ['an ifname with a slash', `${ID_A}\r\neth/0`, undefined],
    ['NUL bytes', `${ID_A}\0`, undefined],
  ];
  it.each(table)('%s', (_name, text, want) => {
    expect(parseLease(text)).toEqual(want === undefined ? undefined : lease(want));
  });
});

describe('createLeaseReader', () => {
  let dir: string;
  const net = (name: string) => {
    mkdirSync(join(dir, name), { recursive: true });
    writeFileSync(join(dir, name, 'lock'), '');
    writeFileSync(join(dir, name, 'last_reserved_ip.0'), '169.254.64.29');
    return (ip: string, text: string) => writeFileSync(join(dir, name, ip), text);
  };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'imdsgate-leases-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('names the sandbox of an IPv4 and an IPv6 lease, in any network, and follows changes', () => {
    net('other')('169.254.64.30', `${ID_B}\r\neth0`);
    const put = net('imdsgate-bed');
    put('169.254.64.24', `${ID_A}\r\neth0`);
    put('fd00:64::18', `${ID_B}\r\neth0`);
    const r = createLeaseReader(dir);
    expect(r.signalFor('169.254.64.24')).toEqual(lease(ID_A));
    expect(r.signalFor('fd00:64::18')).toEqual(lease(ID_B));
    expect(r.signalFor('169.254.64.30')).toEqual(lease(ID_B));
    expect(r.signalFor('169.254.64.25')).toBeUndefined();
    put('169.254.64.24', `${ID_B}\r\neth0`); // released and reserved by another sandbox
    expect(r.signalFor('169.254.64.24')).toEqual(lease(ID_B));
    unlinkSync(join(dir, 'imdsgate-bed', '169.254.64.24')); // CNI DEL
    expect(r.signalFor('169.254.64.24')).toBeUndefined();
    net('moved')('169.254.64.24', ID_A); // the cached network no longer holds it: found elsewhere
    expect(r.signalFor('169.254.64.24')).toEqual(lease(ID_A));
  });

  it('a malformed, oversized, linked or special lease is no signal', () => {
    const put = net('n');
    put('169.254.64.24', `${ID_A}\r\neth0\r\n${'x'.repeat(8)}`);
    put('169.254.64.25', `${ID_A}\r\n${' '.repeat(MAX_LEASE_BYTES)}`);
    put('169.254.64.26', `${ID_A}\r\neth0`);
    symlinkSync(join(dir, 'n', '169.254.64.26'), join(dir, 'n', '169.254.64.27'));
    mkdirSync(join(dir, 'n', '169.254.64.28'));
    execaSync('mkfifo', [join(dir, 'n', '169.254.64.29')]);
    const r = createLeaseReader(dir);
    for (const ip of ['169.254.64.24', '169.254.64.25', '169.254.64.27', '169.254.64.28', '169.254.64.29'])
      expect(r.signalFor(ip), ip).toBeUndefined();
    expect(r.signalFor('169.254.64.26')).toEqual(lease(ID_A));
  });

  it('only a real address names a file; a missing directory is no signal', () => {
    writeFileSync(join(dir, 'x'), ID_A);
    net('n');
    const r = createLeaseReader(dir);
    for (const bad of ['../x', 'x', '', '169.254.64.24/../../x'])
      expect(r.signalFor(bad), bad).toBeUndefined();
    expect(createLeaseReader(join(dir, 'absent')).signalFor('169.254.64.24')).toBeUndefined();
  });

  it('firstSignal prefers the host route and falls back to the lease', () => {
    const route = { kind: 'route', ifindex: 7, iface: 'veth7' } as const;
    const routes = { signalFor: (ip: string) => (ip === '169.254.64.24' ? route : undefined) };
    net('n')('169.254.64.25', ID_A);
    const both = firstSignal(routes, createLeaseReader(dir));
    expect(both.signalFor('169.254.64.24')).toEqual(route);
    expect(both.signalFor('169.254.64.25')).toEqual(lease(ID_A));
    expect(both.signalFor('169.254.64.26')).toBeUndefined();
  });
});
