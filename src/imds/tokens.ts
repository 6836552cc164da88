// IMDSv2 session tokens, minted by the agent (never relayed from upstream) and bound to the caller.
// A token is stateless: `v1.<expiry ms>.<nonce>.<HMAC-SHA256(key, binding)>`, where the binding is the
// caller's source IP and pod identity (UID, namespace/name). A token therefore fails on another pod, on a
// new pod that reuses the IP, after the TTL, and after an agent restart (new random key), which SDKs
// handle by asking for a new token (401 → re-PUT; docs/protocol.md §6.3). No state means no memory
// growth however many tokens pods ask for ("no practical limit on concurrent tokens", §3).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../pods/types.js';

export const TTL_HEADER = 'x-aws-ec2-metadata-token-ttl-seconds';
export const TOKEN_HEADER = 'x-aws-ec2-metadata-token';
export const MIN_TTL = 1;
export const MAX_TTL = 21_600;
const MAX_TOKEN_LENGTH = 256;
/** Verified tokens remembered at most; the memo is dropped whole when full (bounded memory, no LRU). */
export const MAX_VERIFIED_TOKENS = 4096;

/** Who a token is bound to. uid/pod are empty for callers the agent cannot identify. */
export interface TokenBinding {
  readonly ip: string;
  readonly uid: string;
  readonly pod: string;
}

export type TokenCheck = { readonly ok: true } | { readonly ok: false; readonly reason: TokenRejection };
export type TokenRejection = 'malformed' | 'expired' | 'bad_signature';

export interface TokenService {
  mint(binding: TokenBinding, ttlSeconds: number): string;
  verify(token: string, binding: TokenBinding): TokenCheck;
}

/**
 * Parses the TTL header: a decimal integer 1..21600 (UG-v2), anything else (absent, 0, 21601, `abc`,
 * `1.5`, ` 5`, duplicated headers joined with a comma) is undefined, which the caller answers with 400.
 */
export function parseTtl(raw: string | string[] | undefined): number | undefined {
  if (typeof raw !== 'string' || !/^[0-9]{1,6}$/.test(raw)) return undefined;
  const ttl = Number(raw);
  return ttl >= MIN_TTL && ttl <= MAX_TTL ? ttl : undefined;
}

export function createTokenService(opts: { clock: Clock; key?: Buffer; nonce?: () => string }): TokenService {
  const key = opts.key ?? randomBytes(32);
  const nonce = opts.nonce ?? (() => randomBytes(12).toString('base64url'));
  const mac = (bound: string, exp: string, n: string) =>
    createHmac('sha256', key).update(`${bound}\n${exp}\n${n}`).digest();
  // SDKs reuse one token for every request of its TTL (up to 6 h), so each pod presents the same string
  // over and over. A token string whose signature checked out for a binding stays valid for exactly that
  // binding until its expiry (the key never changes in a process), so the HMAC (~8 µs, the largest cost
  // of a token-bearing request) runs once per token and binding. Only successes are remembered; anything
  // else takes the full check, in the same order as before.
  const verified = new Map<string, { readonly bound: string; readonly exp: number }>();
  const remember = (token: string, bound: string, exp: number) => {
    if (verified.size >= MAX_VERIFIED_TOKENS) verified.clear();
    verified.set(token, { bound, exp });
  };
  return {
    mint(binding, ttlSeconds) {
      const exp = String(opts.clock() + ttlSeconds * 1000);
      const n = nonce();
      return `v1.${exp}.${n}.${mac(boundTo(binding), exp, n).toString('base64url')}`;
    },
    verify(token, binding) {
      if (token.length > MAX_TOKEN_LENGTH) return { ok: false, reason: 'malformed' };
      const bound = boundTo(binding);
      const known = verified.get(token);
      if (known !== undefined && known.bound === bound) return expiryCheck(opts.clock(), known.exp);
      const parts = token.split('.');
      if (parts.length !== 4 || parts[0] !== 'v1' || !/^[0-9]{1,15}$/.test(parts[1]!)) {
        return { ok: false, reason: 'malformed' };
      }
      const [, exp, n, sig] = parts as [string, string, string, string];
      const given = Buffer.from(sig, 'base64url');
      const want = mac(bound, exp, n);
      if (given.length !== want.length || !timingSafeEqual(given, want)) {
        return { ok: false, reason: 'bad_signature' };
      }
      // Checked after the signature so that a forged expiry cannot be probed. AEMM: elapsed >= TTL fails.
      const check = expiryCheck(opts.clock(), Number(exp));
      if (check.ok) remember(token, bound, Number(exp));
      return check;
    },
  };
}

const OK: TokenCheck = Object.freeze({ ok: true });
const EXPIRED: TokenCheck = Object.freeze({ ok: false, reason: 'expired' });
const expiryCheck = (now: number, exp: number): TokenCheck => (now >= exp ? EXPIRED : OK);

/** The binding as the MAC input (and memo key) sees it. */
const boundTo = (b: TokenBinding) => `${b.ip}\n${b.uid}\n${b.pod}`;
