// Namespace and service-account annotations, kept current by list+watch so that an annotation change
// takes effect on the next request (no TTL to wait out). Namespaces are few and all are kept (an unknown
// namespace denies); of service accounts only those carrying an annotation we read are kept, so memory
// follows the number of IAM-mapped service accounts, not the cluster size.
import type { V1Namespace, V1ServiceAccount } from '@kubernetes/client-node';
import type { Logger } from '../logger.js';
import { keptAnnotations } from '../pods/index.js';
import { startListWatch } from './list-watch.js';
import type { KubeClient } from './rest.js';

export interface Annotated {
  readonly annotations: Readonly<Record<string, string>>;
}

export interface AnnotationView {
  /** Namespace view: get(namespace). Service-account view: get(namespace, name). */
  get(namespace: string, name?: string): Annotated | undefined;
  isReady(): boolean;
  readonly synced: Promise<void>;
  /** Called with the namespace (and name, for service accounts) whose annotations changed. */
  onChange(listener: (namespace: string, name?: string) => void): () => void;
  stop(): void;
}

type Obj = V1Namespace | V1ServiceAccount;

function startView(
  client: KubeClient,
  logger: Logger,
  kind: 'namespaces' | 'serviceaccounts',
): AnnotationView {
  const store = new Map<string, Annotated>();
  const listeners = new Set<(ns: string, name?: string) => void>();
  let ready = false;
  const keyOf = (o: Obj) =>
    kind === 'namespaces'
      ? (o.metadata?.name ?? '')
      : `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
  const notify = (key: string) => {
    const [a = '', b] = kind === 'namespaces' ? [key] : key.split('/');
    for (const l of listeners) l(a, b);
  };
  const put = (o: Obj): void => {
    const key = keyOf(o);
    const ann = keptAnnotations(o.metadata?.annotations);
    const before = store.get(key);
    const keep = kind === 'namespaces' || Object.keys(ann).length > 0;
    if (keep) store.set(key, { annotations: ann });
    else store.delete(key);
    if (JSON.stringify(before?.annotations) !== JSON.stringify(keep ? ann : undefined)) notify(key);
  };
  const drop = (o: Obj): void => {
    if (store.delete(keyOf(o))) notify(keyOf(o));
  };

  const handle = startListWatch<Obj>({
    client,
    path: `/api/v1/${kind}`,
    logger,
    onList: (items) => {
      const seen = new Set(items.map(keyOf));
      for (const key of [...store.keys()]) {
        if (!seen.has(key)) {
          store.delete(key);
          notify(key);
        }
      }
      items.forEach(put);
      ready = true;
    },
    onEvent: (type, o) => (type === 'DELETED' ? drop(o) : put(o)),
  });

  return {
    get: (ns, name) => store.get(kind === 'namespaces' ? ns : `${ns}/${name ?? ''}`),
    isReady: () => ready,
    synced: handle.synced,
    onChange(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    stop: () => handle.stop(),
  };
}

export function startNamespaceView(client: KubeClient, logger: Logger): AnnotationView {
  return startView(client, logger, 'namespaces');
}

export function startServiceAccountView(client: KubeClient, logger: Logger): AnnotationView {
  return startView(client, logger, 'serviceaccounts');
}
