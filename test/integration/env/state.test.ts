// The state file contract and the scripts' error paths: a clear error when the env is not up, and
// `status` telling a healthy env from a missing one.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, stateFile, testEnv } from '../../env/index.js';
import { addAddress, veth } from '../../env/netns.js';

const empty = mkdtempSync(join(tmpdir(), 'imdsgate-empty-cache-'));
afterAll(() => rmSync(empty, { recursive: true, force: true }));

describe('state file', () => {
  it('testEnv() names the missing file and the command to run', () => {
    const saved = process.env.IMDSGATE_TESTENV_CACHE;
    process.env.IMDSGATE_TESTENV_CACHE = empty;
    try {
      expect(() => testEnv()).toThrow(`${join(empty, 'state.json')} missing): run \`npm run testenv:up\``);
    } finally {
      process.env.IMDSGATE_TESTENV_CACHE = saved;
    }
  });

  it('records every contract field with real paths and loopback endpoints', async () => {
    const env = testEnv();
    expect(stateFile()).toMatch(/state\.json$/);
    expect(env.kube.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(env.sts.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    for (const bin of [env.python, env.awsCli, ...Object.values(env.bins)]) {
      expect((await execa('test', ['-x', bin], { reject: false })).exitCode, bin).toBe(0);
    }
  });

  it('status says "not up" for an empty cache and "up" for the running env', async () => {
    const status = join(REPO_ROOT, 'test/env/status');
    const down = await execa('bash', [status], { env: { IMDSGATE_TESTENV_CACHE: empty }, reject: false });
    expect(down.exitCode).toBe(1);
    expect(down.stdout).toBe('not up');
    const up = await execa('bash', [status]);
    expect(up.stdout).toMatch(/^up: kube https:\/\/127\.0\.0\.1/);
  });
});

describe('netns guards', () => {
  it('refuses namespaces it did not create and non-link-local addresses', async () => {
    await expect(veth({ ns: 'not-ours', ifname: 'a' }, { ns: 'nor-this', ifname: 'b' })).rejects.toThrow(
      /not created by netns\.ts/,
    );
    await expect(addAddress('not-ours', 'lo', '10.1.2.3/32')).rejects.toThrow(/refusing/);
  });
});
