// What a pod's STS session looks like: its RoleSessionName and optional ABAC session tags. Both are
// deterministic functions of the pod, so they double as parts of the credential cache key.
import { createHash } from 'node:crypto';
import type { PodIdentity } from '../pods/types.js';
import type { SessionTag } from './sts-limits.js';

const PREFIX = 'imdsgate.';
const MAX = 64;
const HASH_LEN = 8;

/**
 * `imdsgate.<namespace>.<pod>`: a namespace is a DNS label (no dots), so the first dot after the prefix
 * separates namespace from pod and two pods never share a name. Longer than 64 (the STS limit), or with
 * characters STS refuses, it is cut and suffixed with a hash of namespace/pod so it stays unique.
 */
export function roleSessionName(pod: Pick<PodIdentity, 'namespace' | 'name'>): string {
  const raw = `${PREFIX}${pod.namespace}.${pod.name}`;
  const clean = raw.replace(/[^\w+=,.@-]/g, '_');
  if (clean === raw && raw.length <= MAX) return raw;
  const hash = createHash('sha256').update(`${pod.namespace}/${pod.name}`).digest('hex').slice(0, HASH_LEN);
  return `${clean.slice(0, MAX - HASH_LEN - 1)}-${hash}`;
}

/** Tag keys EKS Pod Identity uses for the same purpose (kubernetes-namespace, ...), one per pod fact. */
export function podSessionTags(pod: PodIdentity, nodeName: string | undefined): SessionTag[] {
  const tags: SessionTag[] = [
    { Key: 'kubernetes-namespace', Value: pod.namespace },
    { Key: 'kubernetes-pod-name', Value: pod.name },
    { Key: 'kubernetes-pod-uid', Value: pod.uid },
    { Key: 'kubernetes-service-account', Value: pod.serviceAccount },
  ];
  const node = pod.nodeName ?? nodeName;
  if (node !== undefined && node !== '') tags.push({ Key: 'kubernetes-node', Value: node });
  return tags.filter((t) => t.Value !== '');
}
