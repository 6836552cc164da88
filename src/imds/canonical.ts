// Canonicalisation of a request target: one pure function from the raw target a pod sent to the single
// path every later decision (token, credentials, path policy, forwarding) is made on. Anything that could
// be read two ways by two parsers (ours, undici's, the real IMDS's) is refused, never forwarded
// (docs/protocol.md §13 #33). The rules, and why:
// - origin-form only (RFC 9112 §3.2.1): absolute-form, authority-form and `*` name no IMDS path;
// - no query, fragment or `;` path parameter: IMDS has none, and servers disagree about `;` (Tomcat-style);
// - no backslash, control character, NUL, space or non-ASCII byte: some servers fold `\` into `/`;
// - percent-encoding is decoded once, and refused when it hides a delimiter (`%2F`, `%2E`, `%5C`, `%3B`,
//   `%3F`, `%23`), a control character, non-ASCII, or another `%` (double encoding, `%252F`);
// - no `.`/`..` segment and no empty segment (`//`): IMDS does not document normalising them (§12a);
// - case is kept: IMDS paths are case-sensitive. Other spellings of sensitive paths are caught by the
//   case-insensitive checks in paths.ts, so they are concealed or refused, never forwarded.

export const MAX_TARGET_LENGTH = 1024;

export type CanonicalResult =
  { readonly ok: true; readonly path: string } | { readonly ok: false; readonly reason: string };

// RFC 3986 pchar minus `;` (sub-delim used for path parameters) plus `/`, and `%` for pct-encoding.
const RAW_ALLOWED = /^[A-Za-z0-9\-._~!$&'()*+,=:@/%]*$/;
// Bytes a percent-escape may NOT stand for: delimiters, `.`, `%`, controls, DEL, non-ASCII.
const ESCAPE_FORBIDDEN = new Set(['/', '\\', '.', '%', ';', '?', '#']);

export function canonicalize(target: string): CanonicalResult {
  if (target.length === 0) return bad('empty target');
  if (target.length > MAX_TARGET_LENGTH) return bad('target too long');
  if (!target.startsWith('/')) return bad('not origin-form');
  if (target.includes('?')) return bad('query string');
  if (target.includes('#')) return bad('fragment');
  if (target.includes(';')) return bad('path parameter');
  if (target.includes('\\')) return bad('backslash');
  if (!RAW_ALLOWED.test(target)) return bad('character not allowed in a path');
  const decoded = decodeOnce(target);
  if (!decoded.ok) return decoded;
  return checkSegments(decoded.path);
}

function decodeOnce(target: string): CanonicalResult {
  let out = '';
  for (let i = 0; i < target.length; i++) {
    const c = target[i]!;
    if (c !== '%') {
      out += c;
      continue;
    }
    const hex = target.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return bad('invalid percent-encoding');
    const code = parseInt(hex, 16);
    if (code < 0x20 || code > 0x7e) return bad('encoded control or non-ASCII byte');
    const ch = String.fromCharCode(code);
    if (ESCAPE_FORBIDDEN.has(ch)) return bad(`encoded delimiter %${hex.toUpperCase()}`);
    out += ch;
    i += 2;
  }
  return { ok: true, path: out };
}

function checkSegments(path: string): CanonicalResult {
  if (path === '/') return { ok: true, path };
  // A single trailing slash is meaningful (a listing); every other segment must be non-empty.
  const body = path.endsWith('/') ? path.slice(1, -1) : path.slice(1);
  for (const seg of body.split('/')) {
    if (seg === '') return bad('empty segment');
    if (seg === '.' || seg === '..') return bad('dot segment');
  }
  return { ok: true, path };
}

const bad = (reason: string): CanonicalResult => ({ ok: false, reason });

// Characters sent literally upstream; everything else in a canonical path (only sub-delims and space-free
// printable ASCII survive canonicalize) is percent-encoded again.
const WIRE_LITERAL = /[A-Za-z0-9\-._~/!$&'()*+,=:@]/;

/** The canonical path as bytes on the wire to upstream. */
export function toWire(path: string): string {
  let out = '';
  for (const c of path) {
    out += WIRE_LITERAL.test(c) ? c : `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
