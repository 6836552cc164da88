// Events about the node itself (`kubectl describe node` shows them), for conditions an operator must act on
// that no single pod owns: the interception self-check (netfilter/interception.ts). Sent on a change of
// state only, so at most one per transition. Node Events live in the "default" namespace with the node's
// name as its uid, as the kubelet's do (https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/).
import type { Logger } from '../logger.js';
import type { Clock } from '../pods/types.js';
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
    const at = new Date(o.clock()).toISOString().replace(/\.\d+Z$/, 'Z');
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${o.nodeName}.imdsgate-`, namespace: 'default' },
      involvedObject: { apiVersion: 'v1', kind: 'Node', name: o.nodeName, uid: o.nodeName },
      reason: e.reason,
      message: e.message.slice(0, 1024),
      type: e.type,
      source: { component: 'imdsgate', host: o.nodeName },
      reportingComponent: 'imdsgate',
      reportingInstance: o.nodeName,
      firstTimestamp: at,
      lastTimestamp: at,
      count: 1,
    };
    try {
      await client.request('POST', '/api/v1/namespaces/default/events', { body });
    } catch (err) {
      o.logger.warn({ reason: e.reason, err: (err as Error).message }, 'could not post the node Event');
    }
  };
}
