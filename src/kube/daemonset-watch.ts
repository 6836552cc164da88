// The agent's own DaemonSet, watched so that `helm uninstall` can remove the interception rules.
// The agent cannot tell an uninstall from a restart by its SIGTERM alone: both look the same, and on a
// restart (rolling update, node drain, OOM kill) the rules must stay so pods fail closed. What differs is
// the DaemonSet: an uninstall deletes it before its pods are stopped (helm deletes the object; the
// garbage collector then deletes the pods), a rolling update or drain leaves it in place. So the agent
// watches its DaemonSet from start-up and, when it stops, removes its rules only if it has SEEN that
// object deleted or marked for deletion. No evidence (API unreachable, never listed) keeps the rules.
// A watch already open keeps streaming after helm deletes the agent's RBAC, which a fresh GET at
// SIGTERM time would not survive (its ClusterRoleBinding and ServiceAccount go in the same uninstall).
import type { Logger } from '../logger.js';
import { startListWatch, type ListWatchHandle } from './list-watch.js';
import { KubeApiError, type KubeClient } from './rest.js';

interface DaemonSetMeta {
  metadata?: { name?: string; resourceVersion?: string; deletionTimestamp?: string; uid?: string };
}

export interface DaemonSetWatch {
  /**
   * True once the DaemonSet was seen present and then deleted or marked for deletion. When the watch has
   * not said so yet, one GET (bounded by `timeoutMs`) may still find it gone: its DELETED event and the
   * pod's SIGTERM race. Any other answer (403 once helm removed our RBAC, timeout) means "not deleted".
   */
  deleted(timeoutMs?: number): Promise<boolean>;
  stop(): void;
}

/** `namespace/name` → its parts; undefined when malformed (config validation rejects that earlier). */
export function parseDaemonSetRef(ref: string): { namespace: string; name: string } | undefined {
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-.a-z0-9]*[a-z0-9])?)$/.exec(ref);
  return m ? { namespace: m[1]!, name: m[3]! } : undefined;
}

/** Pure: the next state from what the watch reported. `seen` = the object was listed or added once. */
export interface OwnerState {
  readonly seen: boolean;
  readonly deleted: boolean;
}
export type OwnerObservation =
  | { kind: 'list'; present: boolean; deleting: boolean }
  | { kind: 'event'; type: 'ADDED' | 'MODIFIED' | 'DELETED'; deleting: boolean };

export function observe(s: OwnerState, o: OwnerObservation): OwnerState {
  if (s.deleted) return s; // a deleted DaemonSet never comes back as the same owner
  if (o.kind === 'list') {
    if (o.present) return { seen: true, deleted: o.deleting };
    // Gone from a relist after we had seen it: deleted while the watch was down.
    return { seen: s.seen, deleted: s.seen };
  }
  if (o.type === 'DELETED') return { seen: true, deleted: true };
  return { seen: true, deleted: o.deleting };
}

export function watchDaemonSet(
  client: KubeClient,
  ref: { namespace: string; name: string },
  logger: Logger,
): DaemonSetWatch {
  let state: OwnerState = { seen: false, deleted: false };
  const update = (o: OwnerObservation) => {
    const was = state.deleted;
    state = observe(state, o);
    if (state.deleted && !was)
      logger.info(
        { daemonset: `${ref.namespace}/${ref.name}` },
        'own DaemonSet deleted: rules go when the agent stops',
      );
  };
  const handle: ListWatchHandle = startListWatch<DaemonSetMeta>({
    client,
    path: `/apis/apps/v1/namespaces/${ref.namespace}/daemonsets`,
    fieldSelector: `metadata.name=${ref.name}`,
    logger: logger.child({ component: 'daemonset-watch' }),
    onList: (items) =>
      update({
        kind: 'list',
        present: items.length > 0,
        deleting: items.some((d) => d.metadata?.deletionTimestamp !== undefined),
      }),
    onEvent: (type, obj) =>
      update({ kind: 'event', type, deleting: obj.metadata?.deletionTimestamp !== undefined }),
  });
  const path = `/apis/apps/v1/namespaces/${ref.namespace}/daemonsets/${ref.name}`;
  const confirm = async (timeoutMs: number): Promise<boolean> => {
    if (state.deleted || !state.seen) return state.deleted;
    try {
      const ds = await client.request<DaemonSetMeta>('GET', path, { signal: AbortSignal.timeout(timeoutMs) });
      update({ kind: 'event', type: 'MODIFIED', deleting: ds.metadata?.deletionTimestamp !== undefined });
    } catch (err) {
      if (err instanceof KubeApiError && err.code === 404)
        update({ kind: 'event', type: 'DELETED', deleting: true });
      else logger.warn({ err: (err as Error).message }, 'own DaemonSet unknown at stop: rules stay');
    }
    return state.deleted;
  };
  return { deleted: (timeoutMs = 2000) => confirm(timeoutMs), stop: () => handle.stop() };
}
