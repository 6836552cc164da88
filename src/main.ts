#!/usr/bin/env -S node --max-semi-space-size=1 --initial-old-space-size=16 --heap-growing-percent=20 --single-threaded-gc --liftoff-only --gc-memory-reducer-start-delay-ms=2000 --v8-pool-size=1 --no-warnings
// argv → subcommand → exit code. Each subcommand lives in commands/ and is loaded only when used,
// so `imdsgate --version` starts without pulling in the Kubernetes client.
//
// The line is under 256 bytes, all Linux >= 5.1 reads of a shebang (EKS AMIs and Bottlerocket run 5.10+;
// a 4.x kernel would cut it at 127 and node would refuse the cut flag, loudly). --no-warnings: see
// handleProcessWarnings in logger.ts.
// The V8 flags above are how the agent runs everywhere (the image's entrypoint is this file; the
// benchmarks read them from here). One agent runs on every node, so resident memory counts more than peak
// throughput; bench/frontdoor/RESULTS.md measured each:
// - a 1 MB young generation instead of Node's 16 MB, which otherwise stays resident after a burst;
// - a first full GC at 16 MB of old space and then at 1.2 × the live size: Node's defaults let garbage
//   grow for a long time before the first full GC, and until one runs V8's memory reducer never returns
//   anything to the OS;
// - V8's memory reducer (which compacts the heap and returns it to the OS once allocation calms down)
//   armed 2 s after a full GC instead of 8 s, so a burst's heap is given back within seconds;
// - GC on the main thread and one V8 worker thread (Node's default is 4), for an agent that uses one core
//   at most: each idle worker still holds a stack and a malloc arena (~3-5 MB in all);
// - Liftoff-only WebAssembly: undici parses HTTP in WebAssembly, and the optimising tier cost ~6 MB
//   resident for no measurable gain per forwarded request.
import { createRequire } from 'node:module';
import { handleProcessWarnings } from './logger.js';

const pkg = createRequire(import.meta.url)('../package.json') as { version: string };

export type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run: Command }> }> = {
  serve: {
    summary: 'run the agent: answer pods on the metadata address',
    load: () => import('./commands/serve.js'),
  },
  rules: {
    summary: 'print (--print) or apply the interception rules',
    load: () => import('./commands/rules.js'),
  },
  uninstall: {
    summary: 'remove the interception rules from this node',
    load: () => import('./commands/uninstall.js'),
  },
  explain: {
    summary: 'show the role decision for a pod and every input behind it',
    load: () => import('./commands/explain.js'),
  },
};

export function usage(): string {
  const lines = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(10)} ${c.summary}`);
  return [
    `imdsgate ${pkg.version}: per-pod IAM credentials on the instance metadata address`,
    '',
    'usage: imdsgate <command> [flags]     imdsgate <command> --help',
    '',
    'commands:',
    ...lines,
    '',
    'flags: --help, --version',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(`${usage()}\n`);
    return first === undefined ? 2 : 0;
  }
  if (first === '--version' || first === '-v' || first === 'version') {
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const cmd = COMMANDS[first];
  if (cmd === undefined) {
    process.stderr.write(`imdsgate: unknown command "${first}"\n\n${usage()}\n`);
    return 2;
  }
  const { run } = await cmd.load();
  return run(rest);
}

export const version = pkg.version;

const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/.*\//, '/'));
if (invokedDirectly || process.argv[1]?.endsWith('/imdsgate')) {
  handleProcessWarnings();
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`imdsgate: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
