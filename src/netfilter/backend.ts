// Which iptables backend the node uses. Our rules must go where kube-proxy and the CNI put theirs: rules
// in the other backend are evaluated too, but in an order nobody chose (kubernetes-sigs/iptables-wrappers
// README), and recent node images may lack the legacy kernel modules entirely.
//
// Detection follows iptables-wrappers' iptables-wrapper-installer.sh, which kube-proxy's image uses:
//   1. kubelet's hint chains (KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY in mangle) in nft → nft;
//   2. else in legacy → legacy;
//   3. else whichever holds more rules; a tie (e.g. an empty node) → nft, the modern default.
import type { Logger } from 'pino';
import { NetfilterError } from './errors.js';
import type { Family } from './render.js';
import type { CommandRunner } from './runner.js';

export type Backend = 'nft' | 'legacy';

export interface Binaries {
  readonly iptables: string;
  readonly save: string;
  readonly restore: string;
}

export function binaries(backend: Backend, family: Family): Binaries {
  const p = family === 'ipv4' ? 'iptables' : 'ip6tables';
  return { iptables: `${p}-${backend}`, save: `${p}-${backend}-save`, restore: `${p}-${backend}-restore` };
}

export interface BackendEvidence {
  readonly available: Readonly<Record<Backend, boolean>>;
  readonly hints: Readonly<Record<Backend, number>>;
  readonly rules: Readonly<Record<Backend, number>>;
}

/** Pure decision from what the save commands showed; throws when no backend is installed at all. */
export function chooseBackend(e: BackendEvidence): { backend: Backend; reason: string } {
  if (!e.available.nft && !e.available.legacy) {
    throw new NetfilterError(
      'binary',
      'neither iptables-nft-save nor iptables-legacy-save found: install iptables',
    );
  }
  if (!e.available.legacy) return { backend: 'nft', reason: 'only the nft binaries are installed' };
  if (!e.available.nft) return { backend: 'legacy', reason: 'only the legacy binaries are installed' };
  if (e.hints.nft > 0) return { backend: 'nft', reason: 'kubelet hint chains found in nft' };
  if (e.hints.legacy > 0) return { backend: 'legacy', reason: 'kubelet hint chains found in legacy' };
  if (e.rules.legacy > e.rules.nft) {
    return {
      backend: 'legacy',
      reason: `more rules in legacy (${e.rules.legacy}) than in nft (${e.rules.nft})`,
    };
  }
  return {
    backend: 'nft',
    reason: `rules in nft: ${e.rules.nft}, in legacy: ${e.rules.legacy} (tie goes to nft)`,
  };
}

const HINT = /^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY) /m;

/** Reads both backends (IPv4 and IPv6 save output) and decides; logs the choice and why. */
export async function detectBackend(runner: CommandRunner, logger: Logger): Promise<Backend> {
  const evidence = {
    available: { nft: true, legacy: true },
    hints: { nft: 0, legacy: 0 },
    rules: { nft: 0, legacy: 0 },
  };
  for (const backend of ['nft', 'legacy'] as const) {
    for (const family of ['ipv4', 'ipv6'] as const) {
      const save = binaries(backend, family).save;
      const out = await saveOutput(runner, save);
      if (out === undefined) {
        if (family === 'ipv4') evidence.available[backend] = false;
        continue;
      }
      evidence.rules[backend] += out.split('\n').filter((l) => l.startsWith('-')).length;
      evidence.hints[backend] += out.split('\n').filter((l) => HINT.test(l)).length;
    }
  }
  const { backend, reason } = chooseBackend(evidence);
  logger.info({ backend, reason, evidence }, `iptables backend: ${backend}`);
  return backend;
}

/** Save output, '' when the backend has nothing (or its tables cannot load), undefined when not installed. */
async function saveOutput(runner: CommandRunner, save: string): Promise<string | undefined> {
  try {
    const r = await runner.run(save, []);
    return r.exitCode === 0 ? r.stdout : '';
  } catch (err) {
    if (err instanceof NetfilterError && err.kind === 'binary') return undefined;
    throw err;
  }
}
