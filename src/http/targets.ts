// What a raw request target means: its canonical path, its class under the path policy, the route label
// for metrics and the spelling sent upstream. Pure functions of the target and the fixed policy.
import { canonicalize, toWire } from '../imds/canonical.js';
import type { PathClass, PathPolicy } from '../imds/paths.js';
import type { RouteClass } from './types.js';

export type Target =
  | { readonly ok: false; readonly reason: string }
  | {
      readonly ok: true;
      readonly path: string;
      readonly cls: PathClass;
      readonly route: RouteClass;
      readonly wire: string;
      /** A directory whose forwarded listing is filtered. */
      readonly dir: boolean;
    };

/** Targets remembered at most, and only short ones; the memo is dropped whole when full. */
const MAX_MEMO_TARGETS = 1024;
const MAX_MEMO_TARGET_LENGTH = 256;

/**
 * canonicalize → classify → toWire, remembered per raw target. All three are pure functions of the
 * target (and the policy, fixed for the pipeline's life), and pods ask for the same few paths again and
 * again, so the memo changes no answer; it only skips re-deriving them (a tenth of a cached credential
 * request's CPU). Bounded, so distinct targets from a hostile pod cannot grow it.
 */
export function createTargetMemo(policy: PathPolicy) {
  const memo = new Map<string, Target>();
  const derive = (target: string): Target => {
    const canon = canonicalize(target);
    if (!canon.ok) return canon;
    const cls = policy.classify(canon.path);
    const dir = policy.isDirectory(canon.path);
    return { ok: true, path: canon.path, cls, route: routeOf(cls), wire: toWire(canon.path), dir };
  };
  return {
    get(target: string): Target {
      let t = memo.get(target);
      if (t !== undefined) return t;
      t = derive(target);
      if (target.length <= MAX_MEMO_TARGET_LENGTH) {
        if (memo.size >= MAX_MEMO_TARGETS) memo.clear();
        memo.set(target, t);
      }
      return t;
    },
  };
}

export function isIdentityPath(cls: PathClass): boolean {
  return (
    cls.kind === 'credentials-list' ||
    cls.kind === 'credentials-role' ||
    cls.kind === 'iam-info' ||
    cls.kind === 'iam-list'
  );
}

export function routeOf(cls: PathClass): RouteClass {
  switch (cls.kind) {
    case 'token':
      return 'token';
    case 'credentials-list':
    case 'credentials-role':
      return 'credentials';
    case 'iam-info':
    case 'iam-list':
      return 'iam';
    case 'forward':
      return 'forward';
    case 'version-listing':
      return 'listing';
    case 'concealed':
      return 'concealed';
    case 'refused':
      return 'invalid';
  }
}
