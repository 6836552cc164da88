// The module graph's rules (.dependency-cruiser.cjs, run by `npm run lint`) hold for src/, and do catch
// what they forbid: a fixture tree with a cycle, a pure module doing I/O and fastify outside http/.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'node_modules/dependency-cruiser/bin/dependency-cruiser.mjs');
const cruise = (cwd: string) =>
  execa(process.execPath, [CLI, 'src', '--config', join(ROOT, '.dependency-cruiser.cjs')], {
    cwd,
    reject: false,
  });

const fixture = mkdtempSync(join(tmpdir(), 'imdsgate-graph-'));
afterAll(() => rmSync(fixture, { recursive: true, force: true }));
const put = (path: string, text: string) => {
  mkdirSync(dirname(join(fixture, path)), { recursive: true });
  writeFileSync(join(fixture, path), text);
};

describe('module graph', () => {
  it('src/ has no cycles and keeps the layering', async () => {
    const r = await cruise(ROOT);
    expect(r.stdout + r.stderr).toContain('no dependency violations found');
    expect(r.exitCode).toBe(0);
  }, 60_000);

  it('the rules catch a cycle, I/O in roles/ and fastify outside http/', async () => {
    put(
      'tsconfig.json',
      JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext' } }),
    );
    put('package.json', JSON.stringify({ type: 'module', dependencies: { fastify: '*' } }));
    put('node_modules/fastify/package.json', JSON.stringify({ name: 'fastify', main: 'index.js' }));
    put('node_modules/fastify/index.js', 'export default 1;\n');
    put('src/main.ts', "import './a.js';\nimport './roles/decide.js';\nimport './metrics.js';\n");
    put('src/a.ts', "import { b } from './b.js';\nexport const a = () => b;\n");
    put('src/b.ts', "import { a } from './a.js';\nexport const b = () => a;\n");
    put('src/roles/decide.ts', "import { c } from '../kube/client.js';\nexport const d = c;\n");
    put('src/kube/client.ts', 'export const c = 1;\n');
    put('src/metrics.ts', "import fastify from 'fastify';\nexport const m = fastify;\n");
    const r = await cruise(fixture);
    const out = r.stdout + r.stderr;
    expect(r.exitCode).not.toBe(0);
    expect(out).toMatch(/no-cycles: src\/a\.ts/);
    expect(out).toMatch(/roles-are-pure: src\/roles\/decide\.ts → src\/kube\/client\.ts/);
    expect(out).toMatch(/only-http-knows-fastify: src\/metrics\.ts/);
  }, 60_000);
});
