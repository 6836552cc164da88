// The tests must run on the Node.js major the image ships (the Dockerfile's pin): a test run on another
// major proves nothing about the agent in production. scripts/pinned-node.sh fetches the pinned runtime
// when the machine's node is another major, and `npm test` runs on it.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const read = (rel: string): string =>
  readFileSync(fileURLToPath(new URL(`../../${rel}`, import.meta.url)), 'utf8');
const pinned = /^ARG NODE_VERSION=(\d+)\.(\d+)\.(\d+)$/m.exec(read('Dockerfile'));

describe('the test runtime', () => {
  it('is the major the Dockerfile pins for the image', () => {
    expect(pinned, 'ARG NODE_VERSION=X.Y.Z in the Dockerfile').not.toBeNull();
    const major = process.versions.node.split('.')[0];
    expect(
      major,
      `tests run on node ${process.versions.node}, the image on ${pinned?.slice(1).join('.')}: ` +
        'run bash scripts/setup.sh, then npm test (scripts/pinned-node.sh)',
    ).toBe(pinned?.[1]);
  });

  it('package.json engines and @types/node name the same major', () => {
    const pkg = JSON.parse(read('package.json')) as {
      engines: { node: string };
      devDependencies: Record<string, string>;
    };
    expect(pkg.engines.node).toBe(`>=${pinned?.[1]}`);
    expect(pkg.devDependencies['@types/node']).toMatch(new RegExp(`^\\^${pinned?.[1]}\\.`));
  });
});
