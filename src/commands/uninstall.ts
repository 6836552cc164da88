// `imdsgate uninstall`: removes our chains and PREROUTING jumps, IPv4 and IPv6, from the forced backend
// or from both. The agent itself never does this on stop (fail closed); this is the explicit step.
import { pino } from 'pino';
import { loadConfig, optionsHelp } from '../config.js';
import { createLogger } from '../logger.js';
import type { Backend } from '../netfilter/backend.js';
import { removeRules } from '../netfilter/remove.js';
import { execaRunner } from '../netfilter/runner.js';
import { reportError } from './rules.js';

const USAGE = `usage: imdsgate uninstall [--iptables-backend auto|nft|legacy]

Removes the IMDSGATE (nat) and IMDSGATE-ANTISPOOF (raw) chains and their PREROUTING jumps for IPv4 and
IPv6; with auto, from both backends. Pods then reach the real metadata service again.`;

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n\n${optionsHelp()}\n`);
    return 0;
  }
  try {
    const cfg = loadConfig(argv, process.env, { command: 'uninstall' });
    const logger = createLogger(cfg.logLevel, pino.destination(2));
    const backends: Backend[] = cfg.iptablesBackend === 'auto' ? ['nft', 'legacy'] : [cfg.iptablesBackend];
    const { removed } = await removeRules(execaRunner(), backends, logger);
    process.stderr.write(
      removed.length > 0
        ? `imdsgate uninstall: removed rules from ${removed.join(', ')}\n`
        : 'imdsgate uninstall: no imdsgate rules found\n',
    );
    return 0;
  } catch (err) {
    return reportError('uninstall', err);
  }
}
