// Reading, applying and removing our rules with one backend's binaries. Check-then-fix: inspect() reads
// only our chains and the PREROUTING jumps; apply() writes with one `iptables-restore --noflush` per family.
// Every command takes the shared xtables lock (-w) so we never race kube-proxy or the CNI
// (Azure/aad-pod-identity#249: lock contention turned fatal without it).
import { binaries, type Backend } from './backend.js';
import {
  CHAINS,
  METADATA_ADDRESS,
  METADATA_PORT,
  TABLES,
  expectedListing,
  jumpRule,
  restoreText,
  uninstallText,
  type Family,
  type FamilyRules,
  type Table,
} from './render.js';
import { classify, type CommandRunner } from './runner.js';

/** Seconds to wait for the xtables lock, as kube-proxy does. */
const LOCK_WAIT = ['-w', '5'];

export interface TableState {
  /** `iptables -S CHAIN` lines, or null when the chain does not exist. */
  readonly listing: readonly string[] | null;
  readonly jumps: number;
}
export type FamilyState = Readonly<Record<Table, TableState>>;

export interface Iptables {
  readonly backend: Backend;
  /** Fails before anything is written: missing binaries, no CAP_NET_ADMIN, unusable backend. */
  preflight(families: readonly Family[]): Promise<void>;
  inspect(family: Family): Promise<FamilyState>;
  apply(rules: FamilyRules, state: FamilyState): Promise<void>;
  /** Removes our jumps and chains of one family; true when something was removed. */
  remove(family: Family): Promise<boolean>;
  /** Ends tracked connections to the metadata address, so none opened before the rules keeps bypassing them. */
  flushConntrack(family: Family): Promise<void>;
}

export function createIptables(runner: CommandRunner, backend: Backend): Iptables {
  const must = async (file: string, args: string[], input?: string) => {
    const r = await runner.run(file, args, input);
    if (r.exitCode !== 0) throw classify(file, args, r);
    return r.stdout;
  };

  async function readChain(family: Family, table: Table): Promise<string[] | null> {
    const { iptables } = binaries(backend, family);
    const args = [...LOCK_WAIT, '-t', table, '-S', CHAINS[table]];
    const r = await runner.run(iptables, args);
    // legacy: "No chain/target/match by that name"; nft: "does not exist" or "incompatible" (exit 1).
    if (r.exitCode === 1 && /No chain|does not exist|incompatible/.test(r.stderr)) return null;
    if (r.exitCode !== 0) throw classify(iptables, args, r);
    return lines(r.stdout);
  }

  async function countJumps(family: Family, table: Table): Promise<number> {
    const { iptables } = binaries(backend, family);
    const out = await must(iptables, [...LOCK_WAIT, '-t', table, '-S', 'PREROUTING']);
    return lines(out).filter((l) => l === jumpRule(table)).length;
  }

  // The four reads are independent, so they run together: on a busy node the pass (and so the repair)
  // takes the time of the slowest read, not of all four in a row.
  async function inspect(family: Family): Promise<FamilyState> {
    const [rawListing, rawJumps, natListing, natJumps] = await Promise.all([
      readChain(family, 'raw'),
      countJumps(family, 'raw'),
      readChain(family, 'nat'),
      countJumps(family, 'nat'),
    ]);
    return { raw: { listing: rawListing, jumps: rawJumps }, nat: { listing: natListing, jumps: natJumps } };
  }

  async function restore(family: Family, text: string): Promise<void> {
    await must(binaries(backend, family).restore, ['--noflush', ...LOCK_WAIT], text);
  }

  return {
    backend,
    async preflight(families) {
      for (const family of families) {
        const b = binaries(backend, family);
        await must(b.restore, ['--version']);
        for (const table of TABLES) await must(b.iptables, [...LOCK_WAIT, '-t', table, '-S', 'PREROUTING']);
      }
      await must('conntrack', ['--version']);
    },
    inspect,
    async apply(rules, state) {
      const missing = { raw: state.raw.jumps === 0, nat: state.nat.jumps === 0 };
      await restore(rules.family, restoreText(rules, missing));
    },
    async remove(family) {
      const state = await inspect(family);
      const text = uninstallText({
        raw: { chainExists: state.raw.listing !== null, jumps: state.raw.jumps },
        nat: { chainExists: state.nat.listing !== null, jumps: state.nat.jumps },
      });
      if (text === '') return false;
      await restore(family, text);
      return true;
    },
    async flushConntrack(family) {
      const args = conntrackFlushArgs(family);
      const r = await runner.run('conntrack', args);
      // Exit 1 with "0 flow entries have been deleted" just means there was nothing to cut.
      if (r.exitCode === 0 || (r.exitCode === 1 && /0 flow entries/.test(r.stderr))) return;
      throw classify('conntrack', args, r);
    },
  };
}

/**
 * `conntrack -D` arguments that cut the flows which really reached the metadata service (a connection
 * opened before the rules would otherwise keep bypassing them) and nothing else. A flow DNATed to the
 * agent has the metadata address as its original destination too, but its reply comes from the agent's
 * address and port; matching the reply source (conntrack(8): --reply-src, --reply-port-src) leaves those
 * alone, so a repair never cuts a pod's request in flight to the agent.
 */
export function conntrackFlushArgs(family: Family): string[] {
  const address = METADATA_ADDRESS[family];
  const port = `${METADATA_PORT}`;
  return [
    '-D',
    '-f',
    family,
    '-d',
    address,
    '-r',
    address,
    '-p',
    'tcp',
    '--dport',
    port,
    '--reply-port-src',
    port,
  ];
}

/** What differs between the desired rules and the state, in words for the log; [] when in place. */
export function drift(rules: FamilyRules, state: FamilyState): string[] {
  const out: string[] = [];
  for (const table of TABLES) {
    const { listing, jumps } = state[table];
    const want = expectedListing(rules, table);
    if (listing === null) out.push(`${table} chain ${CHAINS[table]} missing`);
    else if (listing.join('\n') !== want.join('\n')) {
      const missing = want.filter((l) => !listing.includes(l)).length;
      const extra = listing.filter((l) => !want.includes(l)).length;
      const how = missing + extra === 0 ? 'reordered' : `${missing} missing, ${extra} unexpected`;
      out.push(`${table} chain ${CHAINS[table]} altered (${how})`);
    }
    if (jumps === 0) out.push(`${table} PREROUTING jump missing`);
  }
  return out;
}

const lines = (s: string) => s.split('\n').filter((l) => l.trim() !== '');
