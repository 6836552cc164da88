import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main, usage, version } from '../../src/main.js';

describe('imdsgate CLI', () => {
  afterEach(() => vi.restoreAllMocks());

  it('prints the package version', async () => {
    const out = vi.spyOn(process.stdout, 'write').mockReturnValue(true);
    expect(await main(['--version'])).toBe(0);
    expect(out).toHaveBeenCalledWith(`${version}\n`);
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('prints help naming every command', async () => {
    const out = vi.spyOn(process.stdout, 'write').mockReturnValue(true);
    expect(await main(['--help'])).toBe(0);
    for (const c of ['serve', 'rules', 'uninstall', 'explain']) expect(usage()).toContain(c);
    expect(out).toHaveBeenCalled();
  });

  it('exits 2 with usage on an unknown command or none', async () => {
    const err = vi.spyOn(process.stderr, 'write').mockReturnValue(true);
    vi.spyOn(process.stdout, 'write').mockReturnValue(true);
    expect(await main(['bogus'])).toBe(2);
    expect(String(err.mock.calls[0]?.[0])).toMatch(/unknown command "bogus"/);
    expect(await main([])).toBe(2);
  });

  it('exits 2 naming a boolean flag given anything but true|false|1|0', async () => {
    const err = vi.spyOn(process.stderr, 'write').mockReturnValue(true);
    expect(await main(['serve', '--identity-file=/tmp/x.yaml', '--manage-rules=nope'])).toBe(2);
    expect(String(err.mock.calls[0]?.[0])).toMatch(
      /imdsgate serve: invalid configuration:\n {2}- --manage-rules \/ IMDSGATE_MANAGE_RULES: must be true\|false\|1\|0 \(got "nope"\)/,
    );
    expect(await main(['rules', '--print', '--ipv6=maybe'])).toBe(2);
  });

  it('serve: a bad --kube-api-qps / --kube-api-burst exits 2 before any port opens; --help lists both', async () => {
    const err = vi.spyOn(process.stderr, 'write').mockReturnValue(true);
    const out = vi.spyOn(process.stdout, 'write').mockReturnValue(true);
    // Ports 1 and 2: serve() would fail to bind them (exit 1), so exit 2 proves it never got that far.
    const argv = ['serve', '--node-name=n', '--listen=127.0.0.1:1', '--metrics-listen=127.0.0.1:2'];
    expect(await main([...argv, '--kube-api-burst=0', '--kube-api-qps=x'])).toBe(2);
    const text = err.mock.calls.map((c) => String(c[0])).join('');
    expect(text).toMatch(/--kube-api-burst \/ IMDSGATE_KUBE_API_BURST: must be at least 1/);
    expect(text).toMatch(/--kube-api-qps \/ IMDSGATE_KUBE_API_QPS: must be a number/);
    expect(await main(['serve', '--help'])).toBe(0);
    const help = out.mock.calls.map((c) => String(c[0])).join('');
    expect(help).toMatch(/--kube-api-qps {2}IMDSGATE_KUBE_API_QPS\n.*token bucket.*\(default 5\)/);
    expect(help).toMatch(/--kube-api-burst {2}IMDSGATE_KUBE_API_BURST\n.*\(default 10\)/);
  });
});

describe('the shebang (how the image runs the agent)', () => {
  const source = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
  const first = readFileSync(source, 'utf8').split('\n', 1)[0] ?? '';
  const flags = /^#!\/usr\/bin\/env -S node((?: [^ ]+)*)$/.exec(first)?.[1]?.trim().split(' ') ?? [];

  it('names node through env -S with the V8 flags bench/frontdoor measured', () => {
    expect(flags).toEqual([
      '--max-semi-space-size=2',
      '--initial-old-space-size=16',
      '--heap-growing-percent=20',
      '--liftoff-only',
      '--gc-memory-reducer-start-delay-ms=2000',
      '--v8-pool-size=1',
      '--no-maglev',
      '--expose-gc',
      '--no-warnings',
    ]);
  });

  it('fits in the 256 bytes Linux reads of a shebang', () => {
    expect(Buffer.byteLength(first)).toBeLessThan(256);
  });

  it('every flag is one this node accepts, silently', () => {
    const r = spawnSync(process.execPath, [...flags, '-e', 'process.stdout.write("ok")'], {
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('ok');
  });

  it('env -S runs a script with that line on this system (coreutils >= 8.30)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'imdsgate-shebang-'));
    try {
      const script = join(dir, 'x.mjs');
      writeFileSync(script, `${first}\nprocess.stdout.write(String(process.execArgv));\n`);
      chmodSync(script, 0o755);
      expect(execFileSync(script, { encoding: 'utf8' })).toBe(flags.join(','));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
