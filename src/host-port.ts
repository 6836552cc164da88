// `HOST:PORT` listen addresses (--listen, --metrics-listen): parsed once here for the flag check, the
// rules' DNAT target and the servers' listen(). IPv6 hosts are bracketed, as in URLs (RFC 3986 §3.2.2).
// Brackets around an IPv4 address are accepted too, so that a template that does not know the node's
// family (the chart's `[$(IMDSGATE_HOST_IP)]:8181`, status.hostIP being IPv4 or IPv6) yields a valid
// address either way; an unbracketed IPv6 host is refused, since `fd00::1:8181` is itself an address.
import { ipFamily } from './ip.js';

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
  const host = m[1]!.replace(/^\[(.*)\]$/, '$1');
  if (host !== m[1] && ipFamily(host) === undefined)
    return { problem: 'only an IP address goes in brackets' };
  return { host, port };
}

/** For values the configuration has already validated: the parts, or a thrown error. */
export function hostPort(value: string): HostPort {
  const r = parseHostPort(value);
  if ('problem' in r) throw new Error(`${value}: ${r.problem}`);
  return r;
}
