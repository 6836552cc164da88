// The node-boot guard (issue 6): nodes register with a startup taint so no pod is scheduled before the
// agent's rules and pod view are ready; the agent then removes the taint from its own node. The patch is
// a JSON patch (RFC 6902) that first `test`s the taint's key at the index it read, then `remove`s it: a
// concurrent change to the taints (kubelet, node-lifecycle controller) shifts indexes, the test fails
// (422) and the agent retries from a fresh GET instead of removing someone else's taint. The chart's
// ValidatingAdmissionPolicy admits exactly this: only the startup key disappears, only on its own node.
import type { V1Node } from '@kubernetes/client-node';
import type { Logger } from '../logger.js';
import { KubeApiError, type KubeClient } from './rest.js';

export interface RemoveStartupTaintOptions {
  readonly client: KubeClient;
  readonly nodeName: string;
  readonly key: string;
  readonly logger: Logger;
  /** GET + PATCH rounds when the patch's test fails because the taints changed in between. */
  readonly maxAttempts?: number;
  readonly retryDelayMs?: number;
}

export type StartupTaintResult = 'removed' | 'absent';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Removes every taint with `key` from the node (one per effect); a no-op when there is none. */
export async function removeStartupTaint(o: RemoveStartupTaintOptions): Promise<StartupTaintResult> {
  const path = `/api/v1/nodes/${encodeURIComponent(o.nodeName)}`;
  const max = o.maxAttempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    const node = await o.client.request<V1Node>('GET', path);
    const at = (node.spec?.taints ?? []).flatMap((t, i) => (t.key === o.key ? [i] : []));
    if (at.length === 0) {
      o.logger.info({ node: o.nodeName, key: o.key }, 'startup taint absent: nothing to remove');
      return 'absent';
    }
    // Highest index first, so each remove leaves the earlier indexes valid.
    const patch = at.reverse().flatMap((i) => [
      { op: 'test', path: `/spec/taints/${i}/key`, value: o.key },
      { op: 'remove', path: `/spec/taints/${i}` },
    ]);
    try {
      await o.client.request('PATCH', path, { body: patch, contentType: 'application/json-patch+json' });
      o.logger.info({ node: o.nodeName, key: o.key, attempt }, 'startup taint removed: node open for pods');
      return 'removed';
    } catch (err) {
      const changed = err instanceof KubeApiError && (err.code === 422 || err.code === 409);
      if (!changed || attempt >= max) throw err;
      o.logger.debug({ node: o.nodeName, attempt, err: err.message }, 'taints changed meanwhile: retrying');
      await sleep((o.retryDelayMs ?? 100) * attempt);
    }
  }
}

export interface StartupTaintGuardOptions extends RemoveStartupTaintOptions {
  /** The agent's readiness (serve's notReady()): an empty list means ready. */
  readonly notReady: () => Promise<readonly string[]>;
  readonly pollMs?: number;
  readonly backoffMaxMs?: number;
}

export interface StartupTaintGuard {
  /** Settles once the taint is gone (or was never there); never rejects. */
  readonly done: Promise<StartupTaintResult | 'stopped'>;
  stop(): void;
}

/**
 * Waits until the agent is ready, then removes the taint, retrying failures (API server down, RBAC not
 * yet bound) with backoff: a node whose taint stays is safe, only unused, so this never gives up.
 */
export function startStartupTaintGuard(o: StartupTaintGuardOptions): StartupTaintGuard {
  let stopped = false;
  let wake: () => void = () => undefined;
  const pause = (ms: number) =>
    new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      wake = () => {
        clearTimeout(t);
        r();
      };
    });
  const run = async (): Promise<StartupTaintResult | 'stopped'> => {
    const ready = async () => (await o.notReady().catch((e: Error) => [e.message])).length === 0;
    while (!stopped && !(await ready())) await pause(o.pollMs ?? 500);
    for (let failures = 0; !stopped; failures++) {
      try {
        return await removeStartupTaint(o);
      } catch (err) {
        const delay = Math.min(o.backoffMaxMs ?? 30_000, 1000 * 2 ** failures);
        o.logger.warn(
          { node: o.nodeName, key: o.key, retryInMs: delay, err: (err as Error).message },
          'could not remove the startup taint',
        );
        await pause(delay);
      }
    }
    return 'stopped';
  };
  return {
    done: run(),
    stop() {
      stopped = true;
      wake();
    },
  };
}
