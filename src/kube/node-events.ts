// Events about the node itself (`kubectl describe node` shows them), for conditions an operator must act on
// that no single pod owns: the interception self-check (netfilter/interception.ts). Sent on a change of
// state only, so at most one per transition. Node Events live in the "default" namespace with the node's
// name as its uid, as the kubelet's do (https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/).
import type { Logger } from '../logger.js';
import type { Clock } from '../pods/types.js';
import { eventBody } from './events.js';
import type { KubeClient } from './rest.js';

export interface NodeEvent {
  readonly type: 'Normal' | 'Warning';
  readonly reason: string;
  readonly message: string;
}

export interface NodeEventOptions {
  readonly nodeName: string;
  readonly clock: Clock;
  readonly logger: Logger;
}

export function createNodeEvents(client: KubeClient, o: NodeEventOptions): (e: NodeEvent) => Promise<void> {
  return async (e) => {
    // Node Events live in "default" and carry the node's name as its uid, as the kubelet's do.
    const body = eventBody(
      { apiVersion: 'v1', kind: 'Node', name: o.nodeName, uid: o.nodeName },
      e,
      o.nodeName,
      o.clock(),
    );
    try {
      await client.request('POST', '/api/v1/namespaces/default/events', { body });
    } catch (err) {
      o.logger.warn({ reason: e.reason, err: (err as Error).message }, 'could not post the node Event');
    }
  };
}
