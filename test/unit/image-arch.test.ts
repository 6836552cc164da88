// The Dockerfile builds amd64 and arm64 (Graviton) images. Only test/container/arm64.sh (minutes, under
// qemu) proves the arm64 one runs; these cheap checks keep its ingredients consistent with the amd64
// ones between those runs. test/integration/env/image-pins.test.ts compares the pins with the registry.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const read = (rel: string): string =>
  readFileSync(fileURLToPath(new URL(`../../${rel}`, import.meta.url)), 'utf8');
const dockerfile = read('Dockerfile');
const arg = (name: string): string | undefined => new RegExp(`^ARG ${name}=(.*)$`, 'm').exec(dockerfile)?.[1];

/** Each stage's FROM line and body, by stage name. */
function stages(): Map<string, { from: string; body: string }> {
  const out = new Map<string, { from: string; body: string }>();
  for (const part of dockerfile.split(/^(?=FROM )/m).slice(1)) {
    const [from = '', ...rest] = part.split('\n');
    const name = / AS (\S+)$/.exec(from)?.[1] ?? '';
    out.set(name, { from, body: rest.join('\n') });
  }
  return out;
}

describe('the Dockerfile per architecture', () => {
  it('pins one node version and a distinct sha512 for each of amd64 and arm64', () => {
    expect(arg('NODE_VERSION')).toMatch(/^\d+\.\d+\.\d+$/);
    const amd64 = arg('NODE_SHA512_AMD64');
    const arm64 = arg('NODE_SHA512_ARM64');
    expect(amd64).toMatch(/^[0-9a-f]{128}$/);
    expect(arm64).toMatch(/^[0-9a-f]{128}$/);
    expect(arm64).not.toBe(amd64);
  });

  it('maps each Docker architecture to its node package and its own pin', () => {
    const body = stages().get('toolchain')?.body ?? '';
    expect(body).toMatch(/amd64\) arch=x64; sum="\$NODE_SHA512_AMD64" ;;/);
    expect(body).toMatch(/arm64\) arch=arm64; sum="\$NODE_SHA512_ARM64" ;;/);
    expect(body).toMatch(/\*\) echo "unsupported architecture/);
    expect(body).toContain('node-linux-$arch/-/node-linux-$arch-$NODE_VERSION.tgz');
    // The build machine's node for the builder, the target's for the runtime stage.
    expect(body).toContain('buildarch="${BUILDARCH:-$TARGETARCH}"');
    expect(body).toContain('fetch_node "$buildarch" /opt/node/bin');
    expect(body).toContain('fetch_node "$TARGETARCH" /opt/node-target/bin');
  });

  it('runs npm on the build platform; only the runtime stage is of the target platform', () => {
    const s = stages();
    expect([...s.keys()]).toEqual(['toolchain', 'builder', 'runtime']);
    expect(s.get('toolchain')?.from).toBe('FROM --platform=$BUILDPLATFORM ${BASE} AS toolchain');
    expect(s.get('builder')?.from).toBe('FROM --platform=$BUILDPLATFORM ${BASE} AS builder');
    expect(s.get('runtime')?.from).toBe('FROM --platform=$TARGETPLATFORM ${BASE} AS runtime');
    const runtime = s.get('runtime')?.body ?? '';
    expect(runtime).toContain('COPY --from=toolchain /opt/node-target/bin/node /usr/local/bin/node');
    expect(runtime).not.toMatch(/\/opt\/node\/|\/opt\/npm|\bnpm\b/);
    expect(s.get('builder')?.body).toContain('COPY --from=toolchain /opt/node/bin/node /usr/local/bin/node');
  });

  it('copies only pure-JavaScript production dependencies across architectures', () => {
    // The builder (build platform) installs node_modules for the runtime (target platform): sound only if
    // no production package is platform-specific (cpu/os) or compiles anything (install scripts, gyp).
    const lock = JSON.parse(read('package-lock.json')) as {
      packages: Record<string, Record<string, unknown>>;
    };
    const prod = Object.entries(lock.packages).filter(([p, v]) => p !== '' && !v.dev && !v.devOptional);
    expect(prod.length).toBeGreaterThan(10);
    const native = prod.filter(([, v]) => v.cpu || v.os || v.hasInstallScript || v.gypfile).map(([p]) => p);
    expect(native, 'platform-specific production packages').toEqual([]);
  });

  it('scripts/pinned-node.sh checks each machine against the same pins', () => {
    const script = read('scripts/pinned-node.sh');
    expect(script).toMatch(/x86_64\) arch=x64 sum=\$\(arg NODE_SHA512_AMD64\)/);
    expect(script).toMatch(/aarch64\) arch=arm64 sum=\$\(arg NODE_SHA512_ARM64\)/);
  });
});
