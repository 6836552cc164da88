// Namespace and service-account annotations, kept current by list+watch so that an annotation change
// takes effect on the next request (no TTL to wait out). Namespaces are few and all are kept (an unknown
// namespace denies); of service accounts only those carrying an annotation we read are kept, so memory
// follows the number of IAM-mapped service accounts, not the cluster size.
// Both are listed and watched as metadata only (PartialObjectMetadata): the role decision reads names and
// annotations, never a spec, so the API server need not send (nor this agent parse) the rest.
// https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables is the
// content-negotiation mechanism; the metadata-only media types are those of client-go's metadatainformer.
// Like the pod view, a view that has not heard from the API server for longer than the staleness limit
// stops counting as ready, so identity paths fail closed (503) rather than decide on old annotations.
import type { Logger } from '../logger.js';
import type { Clock } from '../pods/types.js';
import { keptAnnotations } from '../pods/index.js';
import { startListWatch } from './list-watch.js';
import type { KubeClient } from './rest.js';

export const METADATA_ONLY = {
  list: 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1',
  watch: 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1',
} as const;

export interface ViewOptions {
  readonly clock: Clock;
  /** Not ready after this long without a list, event or bookmark; 0 = never. */
  readonly maxStalenessSeconds?: number;
}

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

/** What is read of a Namespace or ServiceAccount (PartialObjectMetadata or the full object). */
interface Obj {
  metadata?: {
    name?: string;
    namespace?: string;
    annotations?: Record<string, string>;
    resourceVersion?: string;
  };
}

function startView(
  client: KubeClient,
  logger: Logger,
  kind: 'namespaces' | 'serviceaccounts',
  vo: ViewOptions,
): AnnotationView {
  const store = new Map<string, Annotated>();
  const listeners = new Set<(ns: string, name?: string) => void>();
  let ready = false;
  let lastSync = 0;
  const maxStaleMs = (vo.maxStalenessSeconds ?? 0) * 1000;
  const fresh = () => maxStaleMs === 0 || vo.clock() - lastSync <= maxStaleMs;
  const keyOf = (o: Obj) =>
    kind === 'namespaces'
      ? (o.metadata?.name ?? '')
      : `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
  const notify = (key: string) => {
    const [a = '', b] = kind === 'namespaces' ? [key] : key.split('/');
    for (const l of listeners) l(a, b);
  };
  // Strip on ingest, page by page: what the view keeps of an object, or nothing for a service account
  // without an annotation we read (most of them).
  const strip = (o: Obj): Obj | undefined => {
    const annotations = keptAnnotations(o.metadata?.annotations);
    if (kind === 'serviceaccounts' && Object.keys(annotations).length === 0) return undefined;
    const { name, namespace } = o.metadata ?? {};
    return {
      metadata: {
        ...(name !== undefined && { name }),
        ...(namespace !== undefined && { namespace }),
        annotations,
      },
    };
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
    accept: METADATA_ONLY,
    paginate: true,
    keep: strip,
    onSync: () => (lastSync = vo.clock()),
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
    isReady: () => ready && fresh(),
    synced: handle.synced,
    onChange(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    stop: () => handle.stop(),
  };
}

export function startNamespaceView(client: KubeClient, logger: Logger, o: ViewOptions): AnnotationView {
  return startView(client, logger, 'namespaces', o);
}

export function startServiceAccountView(client: KubeClient, logger: Logger, o: ViewOptions): AnnotationView {
  return startView(client, logger, 'serviceaccounts', o);
}
