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
});
