// Namespace role patterns (pure). kube2iam's allowed-roles entries are globs (only `*`, which also
// matches `/`) or regular expressions; kiam's permitted annotation is one regular expression. Every
// regular expression is anchored: kube2iam's unanchored regexp.MatchString let `app` allow `evil-app-admin`
// (https://github.com/jtblin/kube2iam#namespace-restrictions). A pattern that names a bare role (no `arn:`) only ever matches roles of the
// base account, never the same name in another account.

export type PatternFormat = 'glob' | 'regexp';

export interface RolePattern {
  readonly source: string;
  readonly re: RegExp;
}

/** Compiled patterns are reused: annotations change rarely and are read on every request. */
const compiled = new Map<string, RegExp>();
const MAX_COMPILED = 2000;

function globToRegExp(glob: string): RegExp {
  const body = glob
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\/]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^(?:${body})$`, 'u');
}

/** Throws SyntaxError for an invalid regular expression. */
export function compilePattern(source: string, format: PatternFormat): RolePattern {
  const key = `${format}\u0000${source}`;
  let re = compiled.get(key);
  if (re === undefined) {
    re = format === 'glob' ? globToRegExp(source) : new RegExp(`^(?:${source})$`, 'u');
    if (compiled.size >= MAX_COMPILED) compiled.clear();
    compiled.set(key, re);
  }
  return { source, re };
}

/**
 * True when the pattern matches the full role ARN, or, for a role in the base account, the part after
 * the base ARN (`app` or `path/app`), so `app-*` means "app-anything in our account" as kube2iam reads it.
 */
export function patternAllows(p: RolePattern, roleArn: string, baseRoleArn: string | undefined): boolean {
  if (p.re.test(roleArn)) return true;
  if (baseRoleArn === undefined || !roleArn.startsWith(baseRoleArn)) return false;
  if (p.source.startsWith('arn:') || p.source.startsWith('^arn:')) return false;
  return p.re.test(roleArn.slice(baseRoleArn.length));
}
