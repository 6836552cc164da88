// `HOST:PORT` listen addresses (--listen, --metrics-listen): parsed once here for the flag check, the
// rules' DNAT target and the servers' listen(). IPv6 hosts are bracketed, as in URLs (RFC 3986 §3.2.2).
export interface HostPort {
  /** Without brackets. */
  readonly host: string;
  readonly port: number;
}

const FORM = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):(\d{1,5})$/;

/** The parts, or a problem (the flag check's message). */
export function parseHostPort(value: string): HostPort | { readonly problem: string } {
  const m = FORM.exec(value);
  if (m === null) return { problem: 'must be HOST:PORT (IPv6 as [addr]:port)' };
  const port = Number(m[2]);
  if (port > 65535) return { problem: 'port must be 0-65535' };
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port };
}

/** For values the configuration has already validated: the parts, or a thrown error. */
export function hostPort(value: string): HostPort {
  const r = parseHostPort(value);
  if ('problem' in r) throw new Error(`${value}: ${r.problem}`);
  return r;
}
