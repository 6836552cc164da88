#!/usr/bin/env -S node --max-semi-space-size=2 --initial-old-space-size=16 --heap-growing-percent=20 --liftoff-only --gc-memory-reducer-start-delay-ms=2000 --v8-pool-size=1 --no-maglev --expose-gc --no-warnings
// argv → subcommand → exit code. Each subcommand lives in commands/ and is loaded only when used,
// so `imdsgate --version` starts without pulling in the Kubernetes client.
//
// The line is under 256 bytes, all Linux >= 5.1 reads of a shebang (EKS AMIs and Bottlerocket run 5.10+;
// a 4.x kernel would cut it at 127 and node would refuse the cut flag, loudly). --no-warnings: see
// handleProcessWarnings in logger.ts.
// The V8 flags above are how the agent runs everywhere (the image's entrypoint is this file; the
// benchmarks read them from here). One agent runs on every node, so resident memory counts more than peak
// throughput. They were retuned on Node 24 (V8 13.6); bench/frontdoor/RESULTS.md has the A/B runs
// (bench/frontdoor/flags.mjs) and the measurements behind each line:
// - a 2 MB young generation: Node 24's V8 grows it to ~28 MB under load and keeps it; 1 MB (the Node 20
//   choice) cost 2.5 µs more CPU per request to save ~2 MB on Node 24
//   (https://nodejs.org/api/cli.html#--max-semi-space-sizesize-in-mib);
// - a first full GC at 16 MB of old space and then at 1.2 × the live size: with V8's own growth RSS was
//   ~19 MB higher after a burst;
// - V8's memory reducer armed 2 s after a full GC instead of 8 s (its later retries wait a fixed 8 s and
//   start a GC only once allocation is low: https://chromium.googlesource.com/v8/v8/+/refs/branch-heads/13.6/src/heap/memory-reducer.cc);
// - one V8 worker thread (Node's default is 4, https://nodejs.org/api/cli.html#--v8-pool-sizenum): each
//   worker that compiles or collects keeps its own malloc arena;
// - no Maglev, V8's mid-tier JIT (https://v8.dev/blog/maglev, on by default since Node 22): its
//   background compiles left ~11 MB in the worker's malloc arena after a burst; TurboFan still optimises
//   hot code and steady CPU per request did not rise (the first seconds of load after a start cost more);
// - no --single-threaded-gc any more: on V8 13 the pages a full GC frees go to a pool that a background
//   task returns to the OS, and with GC confined to the main thread 15-20 MB stayed pooled and more
//   garbage survived marking (flag semantics: https://chromium.googlesource.com/v8/v8/+/refs/branch-heads/13.6/src/flags/flag-definitions.h);
// - --expose-gc: the global gc() that heap-trim.ts calls once the agent is quiet after a burst, because
//   V8 13's memory reducer does not return that memory by itself;
// - Liftoff-only WebAssembly: undici parses HTTP in WebAssembly, and the optimising tier cost ~6 MB
//   resident for no measurable gain per forwarded request (measured on Node 20, kept on Node 24).
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
