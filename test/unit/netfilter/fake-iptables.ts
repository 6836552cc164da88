// An in-memory stand-in for the few iptables/conntrack invocations the guard makes, for unit tests only.
// The real binaries are exercised inside network namespaces by test/e2e/rules.test.ts.
import { NetfilterError } from '../../../src/netfilter/errors.js';
import type { CommandResult, CommandRunner } from '../../../src/netfilter/runner.js';

type TableState = { chains: Map<string, string[]>; prerouting: string[] };
type Tables = Record<'raw' | 'nat', TableState>;

export interface FakeIptables extends CommandRunner {
  readonly calls: string[];
  /** family → table → state */
  readonly state: Record<'ipv4' | 'ipv6', Tables>;
  /** Make the next commands whose line matches fail with this result. */
  failWhen(pattern: RegExp, result: CommandResult): void;
  /** Forgets every failWhen. */
  heal(): void;
  missing: Set<string>;
}

const ok = (stdout = ''): CommandResult => ({ exitCode: 0, stdout, stderr: '' });
const emptyTables = (): Tables => ({
  raw: { chains: new Map(), prerouting: [] },
  nat: { chains: new Map(), prerouting: [] },
});

export function fakeIptables(): FakeIptables {
  const state = { ipv4: emptyTables(), ipv6: emptyTables() };
  const failures: [RegExp, CommandResult][] = [];
  const calls: string[] = [];
  const missing = new Set<string>();

  function list(t: Tables, table: string, chain: string): CommandResult {
    if (chain === 'PREROUTING')
      return ok(['-P PREROUTING ACCEPT', ...t[table as keyof Tables].prerouting].join('\n') + '\n');
    const rules = t[table as keyof Tables].chains.get(chain);
    if (rules === undefined)
      return { exitCode: 1, stdout: '', stderr: 'iptables: No chain/target/match by that name.' };
    return ok([`-N ${chain}`, ...rules.map((r) => `-A ${chain} ${r}`)].join('\n') + '\n');
  }

  function restore(t: Tables, input: string): CommandResult {
    let table = '';
    for (const line of input.split('\n')) {
      if (line.startsWith('*')) table = line.slice(1);
      else if (line.startsWith(':')) t[table as keyof Tables].chains.set(line.slice(1).split(' ')[0]!, []);
      else if (line.startsWith('-A ')) {
        const [, chain, ...rest] = line.split(' ');
        t[table as keyof Tables].chains.get(chain!)!.push(rest.join(' '));
      } else if (line.startsWith('-I PREROUTING 1 '))
        t[table as keyof Tables].prerouting.unshift(`-A PREROUTING ${line.slice(16)}`);
      else if (line.startsWith('-D PREROUTING ')) {
        const i = t[table as keyof Tables].prerouting.indexOf(`-A PREROUTING ${line.slice(14)}`);
        if (i < 0) return { exitCode: 1, stdout: '', stderr: 'iptables-restore: line 2 failed' };
        t[table as keyof Tables].prerouting.splice(i, 1);
      } else if (line.startsWith('-X ')) t[table as keyof Tables].chains.delete(line.slice(3));
    }
    return ok();
  }

  return {
    calls,
    state,
    missing,
    failWhen(pattern, result) {
      failures.push([pattern, result]);
    },
    heal() {
      failures.length = 0;
    },
    async run(file, args, input) {
      const line = `${file} ${args.join(' ')}`;
      calls.push(line);
      if (missing.has(file)) throw new NetfilterError('binary', `${file} not found in PATH`);
      const failure = failures.find(([p]) => p.test(line));
      if (failure) return failure[1];
      const t = file.startsWith('ip6') ? state.ipv6 : state.ipv4;
      if (args.includes('--version')) return ok(`${file} v1.8.9`);
      if (file === 'conntrack')
        return { exitCode: 1, stdout: '', stderr: '0 flow entries have been deleted.' };
      if (file.endsWith('-save')) return ok('');
      if (file.endsWith('-restore')) return restore(t, input ?? '');
      const table = args[args.indexOf('-t') + 1]!;
      return list(t, table, args[args.indexOf('-S') + 1]!);
    },
  };
}
