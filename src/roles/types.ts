// The outcome of the role decision (pure; roles/decide.ts). Every denial carries a typed reason that goes
// to the log, to imdsgate_decisions_total{reason} and to a Kubernetes Event on the pod.
import type { UnboundReason } from '../pods/sandbox.js';
import type { PodIdentity } from '../pods/types.js';

export type DenyReason =
  | 'pod_unknown'
  | 'pod_ip_conflict'
  | UnboundReason
  | 'no_role'
  | 'namespace_forbids'
  | 'namespace_requires_allow'
  | 'invalid_role'
  | 'invalid_annotation'
  | 'invalid_external_id';

export type RoleDecision =
  | {
      readonly allow: true;
      readonly roleArn: string;
      /** Last path segment of the ARN: what the credentials listing shows. */
      readonly roleName: string;
      readonly externalId?: string;
      /** Which input chose the role (service-account, pod-annotation, default, identity-file). */
      readonly source: string;
    }
  | { readonly allow: false; readonly reason: DenyReason; readonly detail: string };

export interface RoleResolver {
  resolve(pod: PodIdentity): RoleDecision | Promise<RoleDecision>;
}

/** Per-namespace override of --imdsv1 (annotation imdsgate.io/imdsv1: allow|deny). */
export interface Imdsv1Policy {
  forPod(pod: PodIdentity): 'allow' | 'deny';
}
