// Keeps docs/configuration.md, docs/errors.md and docs/metrics.md in step with the code.
// Regenerate with: UPDATE_DOCS=1 npx vitest run --project unit test/unit/docs.test.ts
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { OPTIONS, envName, flagName } from '../../src/config.js';
import { ERRORS } from '../../src/errors.js';
import { createMetrics } from '../../src/metrics.js';

const cell = (s: string) => s.replace(/\|/g, '\\|');

function configTable(): string {
  const rows = Object.entries(OPTIONS).map(([k, o]) => {
    const def = 'default' in o && o.default !== undefined ? `\`${String(o.default)}\`` : '';
    return `| \`--${flagName(k)}\` | \`${envName(k)}\` | ${def} | ${cell(o.help)} |`;
  });
  return [
    '# Configuration',
    '',
    'Every option is a flag of `imdsgate serve` and an environment variable; the flag wins. Generated from',
    '`src/config.ts` by `test/unit/docs.test.ts`; invalid values stop the agent before it opens a port or',
    'touches a rule, with one message that lists every problem, and exit code 2. That includes the rules',
    'themselves (with `--manage-rules`, and for `imdsgate rules`): `--interfaces` patterns, and the address',
    'the DNAT points to (`--host-ip`, required when `--listen` names no single IPv4 address, as the default',
    '`0.0.0.0` does, unless the node has only an IPv6 address) and that `--listen` receives each family the',
    'rules DNAT (`[::]` for both). Start-up failures after that (an unreachable upstream, missing iptables) exit 1.',
    '',
    'IPv6: `--host-ip` may be IPv6 (status.hostIP on an IPv6-only node) and then counts as `--host-ipv6`;',
    '`--host-ips` (status.hostIPs) fills either when unset. A node with an IPv6 address and no IPv4 one is',
    'IPv6-only: `[fd00:ec2::254]` is intercepted without `--ipv6`, and pod traffic to 169.254.169.254, which',
    'has no IPv4 DNAT target there, is dropped. `--listen` takes an IPv4 address in brackets too',
    '(`[$(IMDSGATE_HOST_IP)]:8181` is valid for either family).',
    '',
    'A boolean option is on with the bare flag (`--ipv6`) and set either way with `--ipv6=true|false` (or',
    '`1|0`); its variable takes the same values. Any other value is a configuration problem (exit 2).',
    '',
    '| flag | variable | default | meaning |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}

function errorsTable(): string {
  const rows = Object.entries(ERRORS).map(
    ([code, e]) => `| \`${code}\` | ${e.status} | ${cell(e.message || '(empty body)')} |`,
  );
  return [
    '# Errors',
    '',
    'Every error a pod can receive, from `src/errors.ts`. Bodies use the XHTML page IMDS sends for its own',
    'errors; they never name a pod, an address or a role. The stable code appears only in the agent log.',
    '',
    '| code | status | message |',
    '| --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}

function metricsTable(): string {
  const m = createMetrics(undefined, { defaults: false });
  const rows = Object.values(m)
    .filter(
      (v): v is typeof v & { name: string; help: string; labelNames: string[] } =>
        typeof v === 'object' && v !== null && 'help' in v,
    )
    .map((v) => {
      const type = (v as unknown as { constructor: { name: string } }).constructor.name.toLowerCase();
      return `| \`${v.name}\` | ${type} | ${v.labelNames.map((l) => `\`${l}\``).join(', ')} | ${cell(v.help)} |`;
    });
  return [
    '# Metrics',
    '',
    'Served on `--metrics-listen` at `/metrics`, from `src/metrics.ts`. No label carries a pod name or an IP.',
    'Node.js process metrics (`process_*`, `nodejs_*`) are exported too.',
    '',
    '| metric | type | labels | meaning |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}

const DOCS: [string, () => string][] = [
  ['docs/configuration.md', configTable],
  ['docs/errors.md', errorsTable],
  ['docs/metrics.md', metricsTable],
];

describe('generated docs', () => {
  for (const [file, render] of DOCS) {
    it(`${file} matches the code`, () => {
      const want = render();
      if (process.env.UPDATE_DOCS === '1') writeFileSync(file, want);
      expect(readFileSync(file, 'utf8'), `run UPDATE_DOCS=1 to regenerate ${file}`).toBe(want);
    });
  }
});
