// Installs the interception rules, then keeps them: a reconcile pass every cfg.reconcileIntervalMs
// notices a deleted or altered rule and restores it (kube2iam#9: a silent rule reset is a privilege
// escalation). stop() ends the loop and LEAVES THE RULES: with the agent gone, pods get "connection
// refused" instead of the node's role (fail closed; removal is `imdsgate uninstall`).
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics.js';
import { detectBackend, type Backend } from './backend.js';
import { createIptables, drift, type Iptables } from './iptables.js';
import { desiredRules, type FamilyRules } from './render.js';
import { execaRunner, type CommandRunner } from './runner.js';

export type GuardConfig = Pick<
  Config,
  'interfaces' | 'listen' | 'hostIp' | 'hostIpv6' | 'ipv6' | 'reconcileIntervalMs' | 'iptablesBackend'
>;

export interface GuardDeps {
  readonly logger: Logger;
  readonly metrics: Pick<
    Metrics,
    'rulesInstalled' | 'rulesRepairs' | 'rulesReconcileErrors' | 'rulesReconcileDuration'
  >;
  readonly runner?: CommandRunner;
  /** Milliseconds, monotonic; a parameter so tests can pin durations. */
  readonly now?: () => number;
}

export interface RuleGuard {
  readonly backend: Backend;
  /** What the last reconcile pass found wrong, per family (empty: every family's rules in place). */
  problems(): string[];
  /** One reconcile pass now (tests, and the loop itself). */
  reconcile(): Promise<void>;
  /** Ends the loop after any pass in flight; the rules stay in place. */
  stop(): Promise<void>;
}

/** Resolves once the rules are installed; rejects (having written nothing) on a config/permission/binary error. */
export async function startRuleGuard(cfg: GuardConfig, deps: GuardDeps): Promise<RuleGuard> {
  const logger = deps.logger.child({ component: 'netfilter' });
  const { backend, pass, problems } = await prepare(cfg, { ...deps, logger });
  await pass(true);

  let stopped = false;
  let inFlight: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    timer = setTimeout(() => {
      inFlight = pass(false).finally(() => {
        if (!stopped) schedule();
      });
    }, cfg.reconcileIntervalMs);
    timer.unref(); // the servers keep the process alive, not this loop
  };
  schedule();
  return {
    backend,
    problems,
    reconcile: () => pass(false),
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await inFlight;
      logger.info('rule guard stopped; interception rules left in place (fail closed)');
    },
  };
}

/** One install pass without a loop (`imdsgate rules --apply`). */
export async function installRules(cfg: GuardConfig, deps: GuardDeps): Promise<Backend> {
  const { backend, pass } = await prepare(cfg, deps);
  await pass(true);
  return backend;
}

/** Rules, backend and preflight: everything that can refuse before anything is written. */
async function prepare(cfg: GuardConfig, deps: GuardDeps) {
  const runner = deps.runner ?? execaRunner();
  const rules = desiredRules(cfg);
  const backend =
    cfg.iptablesBackend === 'auto'
      ? await detectBackend(runner, deps.logger)
      : logOverride(cfg.iptablesBackend, deps.logger);
  const ipt = createIptables(runner, backend);
  await ipt.preflight(rules.map((r) => r.family));
  const { run, problems } = reconciler(ipt, rules, deps);
  let last: Promise<void> = Promise.resolve();
  // Passes never overlap: a test's reconcile() and the timer's pass queue behind each other.
  const pass = (initial: boolean) => (last = last.then(() => run(initial)));
  return { backend, pass, problems };
}

function logOverride(backend: Backend, logger: Logger): Backend {
  logger.info({ backend, reason: '--iptables-backend' }, `iptables backend: ${backend}`);
  return backend;
}

/**
 * One pass over every family. The first pass throws; later ones count and log errors and go on, and the
 * family counts as not in place (readiness, imdsgate_rules_installed) until a pass succeeds again.
 */
function reconciler(ipt: Iptables, rules: readonly FamilyRules[], deps: GuardDeps) {
  const { logger, metrics } = deps;
  const now = deps.now ?? (() => performance.now());
  const failed = new Map<string, string>(rules.map((r) => [r.family, 'not installed yet']));
  for (const { family } of rules) {
    // The series exist from the start, so increase() in the alerts sees the first repair or error.
    metrics.rulesRepairs.inc({ family }, 0);
    metrics.rulesReconcileErrors.inc({ family }, 0);
  }
  const problems = () => [...failed].map(([family, why]) => `interception rules (${family}): ${why}`);
  const run = async (initial: boolean): Promise<void> => {
    const started = now();
    for (const r of rules) {
      const family = r.family;
      try {
        const state = await ipt.inspect(family);
        const found = drift(r, state);
        if (found.length > 0) {
          await ipt.apply(r, state);
          if (!initial) {
            metrics.rulesRepairs.inc({ family });
            logger.warn({ family, drift: found }, 'interception rules drifted; restored');
          }
        }
        // Always at start (a connection may predate the rules), and after every repair (one may have
        // been opened straight to the real service while the rule was missing).
        if (initial || found.length > 0) await ipt.flushConntrack(family);
        if (initial)
          logger.info({ family, backend: ipt.backend, rules: r.chains }, 'interception rules installed');
        metrics.rulesInstalled.set({ family }, 1);
        failed.delete(family);
      } catch (err) {
        if (initial) throw err;
        metrics.rulesReconcileErrors.inc({ family });
        metrics.rulesInstalled.set({ family }, 0);
        failed.set(family, `last reconcile failed: ${(err as Error).message}`.slice(0, 200));
        logger.error({ family, err }, 'reconciling interception rules failed; will retry');
      }
    }
    metrics.rulesReconcileDuration.observe((now() - started) / 1000);
  };
  return { run, problems };
}
