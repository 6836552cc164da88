// `imdsgate uninstall`: remove our jumps and chains from both families and, unless a backend is forced,
// from both backends (a node that switched backends may hold a copy in each; kube2iam#44/#141/#370: rules
// nobody removes leave every pod without IMDS).
import type { Logger } from 'pino';
import type { Backend } from './backend.js';
import { NetfilterError } from './errors.js';
import { createIptables } from './iptables.js';
import type { Family } from './render.js';
import type { CommandRunner } from './runner.js';

export interface RemoveResult {
  readonly removed: readonly string[];
  /** backend/family pairs that could not be read because they are absent here (not an error). */
  readonly unavailable: readonly string[];
}

export async function removeRules(
  runner: CommandRunner,
  backends: readonly Backend[],
  logger: Logger,
): Promise<RemoveResult> {
  const removed: string[] = [];
  const unavailable: string[] = [];
  for (const backend of backends) {
    const ipt = createIptables(runner, backend);
    for (const family of ['ipv4', 'ipv6'] as const satisfies readonly Family[]) {
      const where = `${backend}/${family}`;
      try {
        if (await ipt.remove(family)) {
          removed.push(where);
          logger.info({ backend, family }, 'interception rules removed');
        }
      } catch (err) {
        // A binary that is not installed, or a table the kernel does not have (no IPv6, no legacy
        // modules), cannot hold our rules. Permission and other errors must not pass silently.
        if (err instanceof NetfilterError && (err.kind === 'binary' || err.kind === 'backend')) {
          unavailable.push(where);
          logger.debug(
            { backend, family, err: err.message },
            'backend not available here; nothing to remove',
          );
          continue;
        }
        throw err;
      }
    }
  }
  return { removed, unavailable };
}
