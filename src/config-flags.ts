// The command line as loadConfig reads it. node's util.parseArgs takes a boolean option only bare
// (`--manage-rules`) and refuses `--manage-rules=false` ("does not take an argument"), so a boolean whose
// default is true could not be switched off with a flag. A boolean's `--flag=VALUE` is taken out before
// parseArgs and handed on as the string VALUE: the config schema's boolean (config.ts) accepts
// true|false|1|0 and names anything else, which the commands turn into exit 2. As with any repeated
// option, the last of `--flag` and `--flag=VALUE` wins.
// https://nodejs.org/api/util.html#utilparseargsconfig
import { parseArgs } from 'node:util';

export interface FlagSpec {
  readonly type: 'string' | 'boolean';
  readonly multiple: boolean;
}

/** Flag values by flag name (`manage-rules`); a boolean given as `--flag=VALUE` comes back as VALUE. */
export function readFlags(
  argv: readonly string[],
  options: Readonly<Record<string, FlagSpec>>,
): Record<string, unknown> {
  const assigned = new Map<string, { value: string; at: number }>();
  const rest: string[] = [];
  const origin: number[] = [];
  for (const [at, arg] of argv.entries()) {
    const m = /^--([^=]+)=(.*)$/s.exec(arg);
    if (arg === '--') {
      rest.push(...argv.slice(at));
      break;
    }
    if (m !== null && options[m[1]!]?.type === 'boolean') {
      assigned.set(m[1]!, { value: m[2]!, at });
    } else {
      rest.push(arg);
      origin.push(at);
    }
  }
  const { values, tokens } = parseArgs({
    args: rest,
    strict: true,
    allowPositionals: false,
    options: { ...options },
    tokens: true,
  });
  const bareAt = new Map<string, number>();
  for (const t of tokens) if (t.kind === 'option') bareAt.set(t.name, origin[t.index] ?? -1);
  const out: Record<string, unknown> = { ...values };
  for (const [name, { value, at }] of assigned) {
    if (at > (bareAt.get(name) ?? -1)) out[name] = value;
  }
  return out;
}
