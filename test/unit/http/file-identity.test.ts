// src/pods/file-identity.ts (owned by the front door; its tests live here). Real files in a temp dir.
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/logger.js';
import { normalizeIp, startFileIdentity, type FileIdentity } from '../../../src/pods/file-identity.js';

const ROLE = 'arn:aws:iam::123456789012:role/path/web-role';
const GOOD = `
pods:
  - { ip: 10.0.0.5, namespace: team-a, name: web-0, serviceAccount: web, roleArn: ${ROLE} }
  - { ip: 10.0.0.6, namespace: team-b, name: batch-0, serviceAccount: batch }
namespaces:
  team-b: { imdsv1: deny }
`;

let dir: string;
let file: string;
let id: FileIdentity | undefined;
const logs: Record<string, unknown>[] = [];
const logger = createLogger(
  'info',
  new Writable({
    write(c: Buffer, _e, cb) {
      logs.push(JSON.parse(c.toString()) as Record<string, unknown>);
      cb();
    },
  }),
);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'imdsgate-fid-'));
  file = join(dir, 'identity.yaml');
  writeFileSync(file, GOOD);
});
afterEach(() => {
  id?.stop();
  id = undefined;
  rmSync(dir, { recursive: true, force: true });
});

const until = async (cond: () => Promise<boolean>, ms = 3000) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('condition not met');
};

describe('file identity', () => {
  it('looks pods up by IP and resolves roles and the IMDSv1 override', async () => {
    id = await startFileIdentity({ path: file, imdsv1: 'allow', logger, pollMs: 0 });
    const web = await id.podLookup.byIp('10.0.0.5');
    expect(web).toMatchObject({
      kind: 'found',
      pod: { namespace: 'team-a', name: 'web-0', serviceAccount: 'web' },
    });
    expect(await id.podLookup.byIp('::ffff:10.0.0.5')).toEqual(web);
    expect(await id.podLookup.byIp('10.0.0.9')).toEqual({ kind: 'unknown' });
    if (web.kind !== 'found') throw new Error('unreachable');
    expect(await id.roleResolver.resolve(web.pod)).toEqual({
      allow: true,
      roleArn: ROLE,
      roleName: 'web-role',
      source: 'identity-file',
    });
    const batch = await id.podLookup.byIp('10.0.0.6');
    if (batch.kind !== 'found') throw new Error('unreachable');
    expect(await id.roleResolver.resolve(batch.pod)).toMatchObject({ allow: false, reason: 'no_role' });
    expect(id.imdsv1Policy.forPod(batch.pod)).toBe('deny');
    expect(id.imdsv1Policy.forPod(web.pod)).toBe('allow');
    expect(id.podLookup.isReady()).toBe(true);
  });

  it('reports two entries for one IP as a conflict', async () => {
    writeFileSync(
      file,
      `${GOOD}\n`.replace(
        '  - { ip: 10.0.0.6',
        '  - { ip: 10.0.0.5, namespace: x, name: y, serviceAccount: z }\n  - { ip: 10.0.0.6',
      ),
    );
    id = await startFileIdentity({ path: file, imdsv1: 'allow', logger, pollMs: 0 });
    expect(await id.podLookup.byIp('10.0.0.5')).toEqual({ kind: 'conflict' });
  });

  it.each([
    ['not yaml', 'pods: [ {', /YAML|Unexpected|Flow|Missing/i],
    [
      'bad ip',
      'pods: [{ ip: nope, namespace: a, name: b, serviceAccount: c }]',
      /pods\.0\.ip: must be an IP/,
    ],
    [
      'bad role',
      'pods: [{ ip: 10.0.0.1, namespace: a, name: b, serviceAccount: c, roleArn: notanarn }]',
      /pods\.0\.roleArn: must be an IAM role ARN/,
    ],
    ['missing field', 'pods: [{ ip: 10.0.0.1, namespace: a, name: b }]', /pods\.0\.serviceAccount: /],
    [
      'unknown field',
      'pods: [{ ip: 10.0.0.1, namespace: a, name: b, serviceAccount: c, role: x }]',
      /pods\.0\.role: must be a mapping of only ip, namespace/,
    ],
    [
      'empty name',
      "pods: [{ ip: 10.0.0.1, namespace: a, name: '', serviceAccount: c }]",
      /pods\.0\.name: must not be empty/,
    ],
    ['bad imdsv1', 'namespaces: { a: { imdsv1: maybe } }', /namespaces\.a\.imdsv1: must be allow or deny/],
    ['pods not a list', 'pods: 3', /pods: /],
  ])('fails the first load on %s, saying where', async (_n, text, why) => {
    writeFileSync(file, text);
    const err = await startFileIdentity({ path: file, imdsv1: 'allow', logger, pollMs: 0 }).catch(
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(why);
  });

  it('fails the first load when the file is missing', async () => {
    await expect(
      startFileIdentity({ path: join(dir, 'nope.yaml'), imdsv1: 'allow', logger }),
    ).rejects.toThrow(/ENOENT/);
  });

  it('reloads on change (including atomic rename) and keeps the last good map on a bad edit', async () => {
    id = await startFileIdentity({ path: file, imdsv1: 'allow', logger, pollMs: 100 });
    const tmp = join(dir, 'identity.yaml.tmp');
    writeFileSync(tmp, GOOD.replace('10.0.0.5', '10.0.0.7'));
    renameSync(tmp, file);
    await until(async () => (await id!.podLookup.byIp('10.0.0.7')).kind === 'found');
    expect(await id.podLookup.byIp('10.0.0.5')).toEqual({ kind: 'unknown' });

    writeFileSync(file, 'pods: [ {');
    await until(async () => logs.some((l) => l.level === 'error'));
    expect((await id.podLookup.byIp('10.0.0.7')).kind).toBe('found');
  });

  it('denies a looked-up pod that the file removed before the role decision', async () => {
    id = await startFileIdentity({ path: file, imdsv1: 'allow', logger, pollMs: 0 });
    const web = await id.podLookup.byIp('10.0.0.5');
    if (web.kind !== 'found') throw new Error('unreachable');
    writeFileSync(file, 'pods: []');
    expect(await id.reload()).toBe(true);
    expect(await id.roleResolver.resolve(web.pod)).toMatchObject({ allow: false, reason: 'pod_unknown' });
  });

  it('normalizes v4-mapped addresses only', () => {
    expect(normalizeIp('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeIp('::1')).toBe('::1');
    expect(normalizeIp('::ffff:zz')).toBe('::ffff:zz');
  });
});
