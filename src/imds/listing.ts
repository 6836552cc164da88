// Filtering of forwarded directory listings, so that a listing names only entries the same pod can then
// read. Crawlers (cloud-init's EC2 data source, configuration-management fact gatherers, monitoring
// agents' metadata collectors) walk every listed entry and give up on the first one that answers 404;
// upstream's `meta-data/` names `identity-credentials/`, which the agent conceals, and `iam/`, which a pod
// with no role may not read.
//
// An IMDS listing is entries separated by "\n"; a directory entry ends with "/" and a public-keys entry
// reads "0=key-name" (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-categories.html).
// Which forwarded paths are directories is known from the path policy (paths.ts isDirectory): only those
// are filtered, so a multi-line leaf value (security-groups) is never mistaken for a listing.
import { canonicalize } from './canonical.js';
import type { PathClass, PathPolicy } from './paths.js';

/** How the pod may read an entry: always, never, or only when it has an allowed role. */
export type EntryAccess = 'readable' | 'hidden' | 'role';

export function entryAccess(cls: PathClass): EntryAccess {
  switch (cls.kind) {
    case 'forward':
    case 'version-listing':
      return 'readable';
    case 'credentials-list':
    case 'credentials-role':
    case 'iam-list':
    case 'iam-info':
      return 'role';
    case 'token':
    case 'concealed':
    case 'refused':
      return 'hidden';
  }
}

/** The canonical path of a listing entry, or undefined when it names no single path. */
export function entryPath(dirPath: string, entry: string): string | undefined {
  const name = /^\d+=/.test(entry) ? entry.slice(0, entry.indexOf('=')) : entry;
  if (name === '' || name === '/' || name.includes('%')) return undefined;
  const base = dirPath.endsWith('/') ? dirPath : `${dirPath}/`;
  const c = canonicalize(`${base}${name}`);
  return c.ok ? c.path : undefined;
}

interface Analysis {
  readonly lines: string[];
  readonly access: (EntryAccess | 'blank')[];
}

function analyse(body: Buffer, dirPath: string, policy: PathPolicy): Analysis {
  const lines = body.toString('latin1').split('\n');
  const access = lines.map((line): EntryAccess | 'blank' => {
    const entry = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (entry === '') return 'blank';
    const path = entryPath(dirPath, entry);
    return path === undefined ? 'hidden' : entryAccess(policy.classify(path));
  });
  return { lines, access };
}

function render(a: Analysis, role: boolean): Buffer {
  const kept = a.lines.filter((_, i) => {
    const x = a.access[i];
    return x === 'readable' || x === 'blank' || (x === 'role' && role);
  });
  return Buffer.from(kept.join('\n'), 'latin1');
}

const hidesNothing = (a: Analysis) => a.access.every((x) => x === 'readable' || x === 'blank');

/**
 * The listing at `dirPath` (a canonical path the policy calls a directory) without the entries the pod
 * cannot read. `hasRole` is asked at most once, and only when an entry depends on it.
 */
export async function filterListing(
  body: Buffer,
  dirPath: string,
  policy: PathPolicy,
  hasRole: () => boolean | Promise<boolean>,
): Promise<Buffer> {
  const a = analyse(body, dirPath, policy);
  if (hidesNothing(a)) return body;
  return render(a, a.access.includes('role') ? await hasRole() : false);
}

/** Directory paths remembered at most; the memo is dropped whole when full. */
const MAX_MEMO_DIRS = 256;

/**
 * filterListing, remembered per directory path while upstream sends the same bytes: a listing changes
 * rarely, and classifying its entries costs ~100 µs (bench/listing), more than the rest of a forwarded
 * request. Both answers (with and without a role) are kept; the memo is bounded.
 */
export function createListingFilter(policy: PathPolicy) {
  type Memo = { source: Buffer; a: Analysis; hides: boolean; needsRole: boolean; out: [Buffer?, Buffer?] };
  const memo = new Map<string, Memo>();
  return async (body: Buffer, dirPath: string, hasRole: () => boolean | Promise<boolean>) => {
    let m = memo.get(dirPath);
    if (m === undefined || !m.source.equals(body)) {
      if (memo.size >= MAX_MEMO_DIRS) memo.clear();
      const a = analyse(body, dirPath, policy);
      const needsRole = a.access.includes('role');
      m = { source: Buffer.from(body), a, hides: !hidesNothing(a), needsRole, out: [undefined, undefined] };
      memo.set(dirPath, m);
    }
    if (!m.hides) return body;
    const role = m.needsRole ? await hasRole() : false;
    return (m.out[role ? 1 : 0] ??= render(m.a, role));
  };
}
