// Classification of canonical paths (canonical.ts) and the path policy for everything not answered by
// the agent itself. Credential, token and IAM paths are recognised under every API version prefix
// (`latest`, `1.0`, `2007-01-19`, any YYYY-MM-DD; docs/protocol.md §0.1, §13 #31) and, case-insensitively,
// in any spelling: a spelling that differs from the real one is refused, never forwarded (§13 #33).
//
// Policy for the rest, in order (deny wins):
//   1. hard-denied, cannot be allowed: api/** (tokens are minted here), meta-data/iam/** (intercepted),
//      meta-data/identity-credentials/** (the node's identity-role credentials, §5.5, §13 #35);
//   2. cfg.denyPath globs (case-insensitive) → concealed;
//   3. cfg.allowPath globs and DEFAULT_ALLOW (case-sensitive) → forwarded;
//   4. everything else → concealed (404). user-data is concealed by default: it often holds node secrets.
// Globs are relative to the version prefix (`meta-data/placement/**`); `*` stays within a segment, `**`
// spans segments, and `x/**` also matches `x` itself. A trailing slash is ignored for matching.

export type PathClass =
  | { readonly kind: 'version-listing' }
  | { readonly kind: 'token'; readonly versioned: boolean }
  | { readonly kind: 'credentials-list'; readonly extended: boolean }
  | { readonly kind: 'credentials-role'; readonly extended: boolean; readonly role: string }
  | { readonly kind: 'iam-list' }
  | { readonly kind: 'iam-info' }
  | { readonly kind: 'refused'; readonly reason: string }
  | { readonly kind: 'concealed'; readonly reason: string }
  | { readonly kind: 'forward' };

/** Instance and placement data SDKs and workloads need; nothing that is a node secret. */
export const DEFAULT_ALLOW: readonly string[] = [
  'meta-data',
  'meta-data/ami-id',
  'meta-data/ami-launch-index',
  'meta-data/ami-manifest-path',
  'meta-data/autoscaling/**',
  'meta-data/block-device-mapping/**',
  'meta-data/events/**',
  'meta-data/hostname',
  'meta-data/instance-action',
  'meta-data/instance-id',
  'meta-data/instance-life-cycle',
  'meta-data/instance-type',
  'meta-data/kernel-id',
  'meta-data/local-hostname',
  'meta-data/local-ipv4',
  'meta-data/mac',
  'meta-data/network/**',
  'meta-data/placement/**',
  'meta-data/product-codes',
  'meta-data/profile',
  'meta-data/public-hostname',
  'meta-data/public-ipv4',
  'meta-data/ramdisk-id',
  'meta-data/reservation-id',
  'meta-data/security-groups',
  'meta-data/services/**',
  'meta-data/spot/**',
  'dynamic',
  'dynamic/instance-identity',
  'dynamic/instance-identity/document',
  'dynamic/instance-identity/signature',
  'dynamic/instance-identity/pkcs7',
  'dynamic/instance-identity/rsa2048',
  'dynamic/fws/**',
];

const VERSION = /^(latest|1\.0|\d{4}-\d{2}-\d{2})$/;
const HARD_DENY = ['api/**', 'meta-data/iam/**', 'meta-data/identity-credentials/**'];

export interface PathPolicy {
  classify(canonicalPath: string): PathClass;
  /**
   * Whether a forwarded canonical path is a directory whose listing may name entries the policy hides:
   * the root, a version root, and every directory above a glob of the policy (listing.ts filters these).
   */
  isDirectory(canonicalPath: string): boolean;
}

export function createPathPolicy(opts: { allow?: readonly string[]; deny?: readonly string[] } = {}) {
  const hardDeny = HARD_DENY.map((g) => compileGlob(g, true));
  const deny = (opts.deny ?? []).map((g) => compileGlob(g, true));
  const allow = [...DEFAULT_ALLOW, ...(opts.allow ?? [])].map((g) => compileGlob(g, false));
  const dirs = [...HARD_DENY, ...DEFAULT_ALLOW, ...(opts.allow ?? []), ...(opts.deny ?? [])]
    .flatMap(parentsOf)
    .map((g) => compileGlob(g, true));
  const policy = (rest: string): PathClass => {
    const p = rest.endsWith('/') ? rest.slice(0, -1) : rest;
    if (hardDeny.some((re) => re.test(p))) return { kind: 'concealed', reason: 'hard_deny' };
    if (deny.some((re) => re.test(p))) return { kind: 'concealed', reason: 'deny_path' };
    if (allow.some((re) => re.test(p))) return { kind: 'forward' };
    return { kind: 'concealed', reason: 'not_allowed' };
  };
  return {
    classify(path: string): PathClass {
      if (path === '/') return { kind: 'version-listing' };
      const slash = path.indexOf('/', 1);
      const version = slash === -1 ? path.slice(1) : path.slice(1, slash);
      const rest = slash === -1 ? '' : path.slice(slash + 1);
      if (!VERSION.test(version)) {
        // `/LATEST/api/token` must not become a forwarded path either: unknown prefixes are concealed.
        return { kind: 'concealed', reason: 'unknown_version' };
      }
      if (rest === '') return { kind: 'version-listing' };
      return classifyRest(version, rest) ?? policy(rest);
    },
    isDirectory(path: string): boolean {
      const segs = path.split('/').filter((s) => s !== '');
      if (segs.length <= 1) return true;
      const rest = segs.slice(1).join('/');
      return dirs.some((re) => re.test(rest));
    },
  } satisfies PathPolicy;
}

/** The agent's own paths; undefined when the path falls through to the policy. */
function classifyRest(version: string, rest: string): PathClass | undefined {
  const segs = rest.split('/');
  const lower = segs.map((s) => s.toLowerCase());
  if (lower[0] === 'api') {
    if (segs[0] !== 'api') return refused('api spelling');
    if (rest === 'api/token') return { kind: 'token', versioned: version !== 'latest' };
    if (lower.slice(1).join('/') === 'token') return refused('token spelling');
    return { kind: 'concealed', reason: 'hard_deny' };
  }
  if (lower[0] !== 'meta-data' || lower[1] !== 'iam') return undefined;
  if (segs[0] !== 'meta-data' || segs[1] !== 'iam') return refused('iam spelling');
  return classifyIam(segs.slice(2), lower.slice(2));
}

/** segs: what follows `meta-data/iam/`; a trailing slash shows up as a final empty segment. */
function classifyIam(segs: string[], lower: string[]): PathClass {
  if (segs.length === 0 || (segs.length === 1 && segs[0] === '')) return { kind: 'iam-list' };
  const [head, ...tail] = segs;
  const family = lower[0];
  if (family === 'info') {
    if (head !== 'info') return refused('iam/info spelling');
    return tail.length === 0 ? { kind: 'iam-info' } : { kind: 'concealed', reason: 'iam_unknown' };
  }
  if (family !== 'security-credentials' && family !== 'security-credentials-extended') {
    return { kind: 'concealed', reason: 'iam_unknown' };
  }
  if (head !== family) return refused('security-credentials spelling');
  const extended = family === 'security-credentials-extended';
  if (tail.length === 0 || (tail.length === 1 && tail[0] === '')) {
    return { kind: 'credentials-list', extended };
  }
  if (tail.length === 1) return { kind: 'credentials-role', extended, role: tail[0]! };
  return { kind: 'concealed', reason: 'iam_unknown' };
}

const refused = (reason: string): PathClass => ({ kind: 'refused', reason });

// The directories above a glob: for a/STAR/c/d they are a, a/STAR and a/STAR/c (STAR being a `*`
// segment); nothing at or below a `**` segment.
function parentsOf(glob: string): string[] {
  const segs = glob.replace(/^\/+/, '').replace(/\/+$/, '').split('/');
  const out: string[] = [];
  for (let i = 1; i < segs.length && !segs[i - 1]!.includes('**'); i++) out.push(segs.slice(0, i).join('/'));
  return out;
}

/** Glob → anchored RegExp. `**` spans segments, `*` does not, `x/**` also matches `x`. */
export function compileGlob(glob: string, caseInsensitive: boolean): RegExp {
  let g = glob.replace(/^\/+/, '').replace(/\/+$/, '');
  let suffix = '';
  if (g.endsWith('/**')) {
    g = g.slice(0, -3);
    suffix = '(?:/.*)?';
  }
  let re = '';
  for (let i = 0; i < g.length; i++) {
    const c = g[i]!;
    if (c === '*' && g[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^/]*';
    else re += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}${suffix}$`, caseInsensitive ? 'i' : '');
}
