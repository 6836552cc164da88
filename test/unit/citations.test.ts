// Comments cite public sources or files in this repository, never documents that are not in it, and every
// docs/*.md a comment names exists.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SKIP = new Set(['node_modules', 'dist', '.git', 'coverage']);
function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    if (SKIP.has(n)) return [];
    const p = join(dir, n);
    return statSync(p).isDirectory()
      ? files(p)
      : /\.(ts|mjs|cjs|js|sh|py|go|ya?ml|tpl|md)$|Dockerfile$/.test(n)
        ? [p]
        : [];
  });
}
const sources = ['src', 'test', 'scripts', 'bench', 'charts', 'docs', '.ci']
  .flatMap((d) => files(join(ROOT, d)))
  .concat([join(ROOT, 'Dockerfile'), join(ROOT, 'README.md')])
  .filter((f) => f !== fileURLToPath(import.meta.url));

describe('citations', () => {
  it('no file cites a document outside the repository', () => {
    const outside = /imds-protocol\.md|peers\.md|shared\/docs|design\.md|style-anchors|container-build\.md/;
    const hits = sources.flatMap((f) =>
      readFileSync(f, 'utf8')
        .split('\n')
        .flatMap((l, i) => (outside.test(l) ? [`${relative(ROOT, f)}:${i + 1}: ${l.trim()}`] : [])),
    );
    expect(hits).toEqual([]);
  });

  it('every docs/*.md a file names exists', () => {
    const missing = sources.flatMap((f) =>
      [...readFileSync(f, 'utf8').matchAll(/\bdocs\/([\w-]+\.md)/g)]
        .map((m) => m[1]!)
        .filter((d) => !existsSync(join(ROOT, 'docs', d)))
        .map((d) => `${relative(ROOT, f)}: docs/${d}`),
    );
    expect(missing).toEqual([]);
  });
});
