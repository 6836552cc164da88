// `imdsgate rules --print` shows the iptables-restore input the agent would apply and touches nothing
// (not even backend detection). `imdsgate rules --apply` installs the rules once, without a guard loop.
import { pino } from 'pino';
import { ConfigError, loadConfig, optionsHelp } from '../config.js';
import { createLogger } from '../logger.js';
import { createMetrics } from '../metrics.js';
import { NetfilterError } from '../netfilter/errors.js';
import { installRules } from '../netfilter/guard.js';
import { desiredRules, restoreText } from '../netfilter/render.js';

const USAGE = `usage: imdsgate rules --print|--apply [flags]

  --print   print the iptables-restore input (per family) that would be applied; changes nothing
  --apply   install the rules once (detect backend, apply atomically, flush conntrack); no guard loop

flags that matter here: --interfaces, --listen, --host-ip, --host-ipv6, --ipv6, --iptables-backend`;

export async function run(argv: string[]): Promise<number> {
  const mode = argv.find((a) => a === '--print' || a === '--apply');
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n\n${optionsHelp()}\n`);
    return 0;
  }
  if (mode === undefined || (argv.includes('--print') && argv.includes('--apply'))) {
    process.stderr.write(`imdsgate rules: give exactly one of --print or --apply\n\n${USAGE}\n`);
    return 2;
  }
  try {
    const cfg = loadConfig(
      argv.filter((a) => a !== mode),
      process.env,
      { command: 'rules' },
    );
    if (mode === '--print') {
      for (const rules of desiredRules(cfg)) {
        const tool = rules.family === 'ipv4' ? 'iptables' : 'ip6tables';
        process.stdout.write(`# ${rules.family}: ${tool}-restore --noflush -w 5 (first install)\n`);
        process.stdout.write(restoreText(rules, { raw: true, nat: true }));
      }
      return 0;
    }
    const logger = createLogger(cfg.logLevel, pino.destination(2));
    const backend = await installRules(cfg, {
      logger,
      metrics: createMetrics(undefined, { defaults: false }),
    });
    process.stderr.write(`imdsgate rules: installed with iptables-${backend}\n`);
    return 0;
  } catch (err) {
    return reportError('rules', err);
  }
}

/** Config problems exit 2 (usage), netfilter refusals 1, with the message that says what to do. */
export function reportError(command: string, err: unknown): number {
  if (err instanceof ConfigError) {
    process.stderr.write(`imdsgate ${command}: ${err.message}\n`);
    return 2;
  }
  if (err instanceof NetfilterError) {
    process.stderr.write(`imdsgate ${command}: ${err.message}\n`);
    return err.kind === 'config' ? 2 : 1;
  }
  throw err;
}
