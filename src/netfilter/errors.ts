// One error type for everything netfilter can refuse, with a kind the commands turn into an exit code
// and the guard into a log line. Messages say what to do, not only what failed.
export type NetfilterErrorKind =
  | 'config' // the options cannot be turned into rules
  | 'permission' // no CAP_NET_ADMIN in this network namespace
  | 'binary' // an iptables/conntrack binary is missing
  | 'backend' // the chosen backend cannot be used on this kernel, or is unknown
  | 'apply'; // iptables-restore or a read refused for another reason

export class NetfilterError extends Error {
  constructor(
    readonly kind: NetfilterErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'NetfilterError';
  }
}
