// The built CLI, as the node runs it. e2e tests drive dist/, not src/, so they prove what ships.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { inNetns } from './netns.js';

/** The checkout; the demo runs a compiled copy of this directory elsewhere and sets IMDSGATE_REPO_ROOT. */
export const ROOT = process.env.IMDSGATE_REPO_ROOT ?? fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = `${ROOT}dist/main.js`;

export function requireBuild(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} missing: run \`npm run build\` before the e2e suite`);
}

/** `imdsgate <args>` inside ns. */
export const cliIn = (ns: string, args: readonly string[]) => inNetns(ns, process.execPath, [CLI, ...args]);
