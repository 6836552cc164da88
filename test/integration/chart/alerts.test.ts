// Every alert of the PrometheusRule fires on the series it is meant for and clears when they recover,
// proved by `promtool test rules` on the groups exactly as helm renders them
// (https://prometheus.io/docs/prometheus/latest/configuration/unit_testing_rules/). One case per alert: input
// series at 1m intervals, the alert expected at one time and gone at a later one. A new alert without a case
// fails the last test.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { testEnv } from '../../env/index.js';
import { find, render } from './helpers.js';

type Rule = {
  alert: string;
  expr: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
};
type Labels = Record<string, string>;
interface Case {
  /** Input series: PromQL series selector → promtool expanding notation. */
  readonly series: Record<string, string>;
  readonly firesAt: string;
  readonly clearsAt: string;
  /** Labels of the alert besides its own (severity). */
  readonly labels: Labels;
  /** Optional: a time after the condition starts but before `for` has passed. */
  readonly pendingAt?: string;
}

const NODE = 'node="ip-10-0-0-1"';
const UP = `up{namespace="imdsgate-system", pod="r-imdsgate-x7k2p", ${NODE}}`;
const node = { node: 'ip-10-0-0-1' };
const CASES: Record<string, Case> = {
  ImdsgateAgentDown: {
    series: { [UP]: '0x10 1x10' },
    pendingAt: '3m',
    firesAt: '7m',
    clearsAt: '15m',
    labels: { namespace: 'imdsgate-system', pod: 'r-imdsgate-x7k2p', ...node },
  },
  ImdsgateAgentAbsent: {
    series: { [UP]: '_x20 1x10' },
    pendingAt: '10m',
    firesAt: '17m',
    clearsAt: '25m',
    labels: { namespace: 'imdsgate-system' },
  },
  ImdsgateNotReady: {
    series: { [`imdsgate_ready{${NODE}}`]: '0x10 1x10' },
    pendingAt: '3m',
    firesAt: '7m',
    clearsAt: '15m',
    labels: node,
  },
  ImdsgateRulesMissing: {
    series: { [`imdsgate_rules_installed{family="ipv4", ${NODE}}`]: '0x5 1x5' },
    firesAt: '3m',
    clearsAt: '8m',
    labels: { family: 'ipv4', ...node },
  },
  ImdsgateInterceptionBroken: {
    series: {
      [`imdsgate_interception_ok{reason="unmatched_pod_interface", ${NODE}}`]: '0x10 stale',
      [`imdsgate_interception_ok{reason="", ${NODE}}`]: '_x11 1x10',
    },
    pendingAt: '3m',
    firesAt: '7m',
    clearsAt: '15m',
    labels: { reason: 'unmatched_pod_interface', ...node },
  },
  ImdsgateRulesRepaired: {
    series: { [`imdsgate_rules_repairs_total{family="ipv4", ${NODE}}`]: '0x5 1x30' },
    firesAt: '10m',
    clearsAt: '30m',
    labels: { family: 'ipv4', ...node },
  },
  ImdsgateRulesReconcileFailing: {
    series: { [`imdsgate_rules_reconcile_errors_total{family="ipv4", ${NODE}}`]: '0+1x20 20x20' },
    pendingAt: '5m',
    firesAt: '15m',
    clearsAt: '35m',
    labels: { family: 'ipv4', ...node },
  },
  ImdsgateStsErrors: {
    series: {
      [`imdsgate_sts_requests_total{api="AssumeRole", outcome="AccessDenied", ${NODE}}`]: '0+6x20 120x20',
      [`imdsgate_sts_requests_total{api="AssumeRole", outcome="success", ${NODE}}`]: '0+600x40',
    },
    pendingAt: '8m',
    firesAt: '16m',
    clearsAt: '35m',
    labels: { api: 'AssumeRole', ...node },
  },
  ImdsgateDenialsSpike: {
    series: {
      [`imdsgate_decisions_total{outcome="deny", reason="namespace_forbids", pod_namespace="a", ${NODE}}`]:
        '0+120x20 2400x20',
    },
    pendingAt: '8m',
    firesAt: '16m',
    clearsAt: '35m',
    labels: node,
  },
  ImdsgatePodViewStale: {
    series: { [`imdsgate_pod_view_staleness_seconds{${NODE}}`]: '200x10 5x10' },
    pendingAt: '3m',
    firesAt: '7m',
    clearsAt: '15m',
    labels: node,
  },
  ImdsgateUpstreamErrors: {
    series: { [`imdsgate_upstream_errors_total{kind="timeout", ${NODE}}`]: '0+12x20 240x20' },
    pendingAt: '8m',
    firesAt: '16m',
    clearsAt: '35m',
    labels: { kind: 'timeout', ...node },
  },
};

/** The annotation as Prometheus renders it for these labels (the chart uses only `{{ $labels.x }}`). */
const expand = (text: string, labels: Labels) =>
  text.replace(/\{\{ *\$labels\.([a-z_]+) *\}\}/g, (_m, k: string) => labels[k] ?? '');

let rules: Rule[];
let dir: string;
beforeAll(async () => {
  const rule = find(await render({ set: ['prometheusRule.enabled=true'] }), 'PrometheusRule');
  const groups = (rule.spec as { groups: { rules: Rule[] }[] }).groups;
  rules = groups.flatMap((g) => g.rules);
  dir = mkdtempSync(join(tmpdir(), 'imdsgate-alert-tests-'));
  writeFileSync(join(dir, 'rules.yaml'), stringify({ groups }));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function promtoolTest(name: string, c: Case): Promise<{ code: number; out: string }> {
  const r = rules.find((x) => x.alert === name)!;
  const labels = { ...r.labels, ...c.labels };
  const annotations = Object.fromEntries(
    Object.entries(r.annotations).map(([k, v]) => [k, expand(v, labels)]),
  );
  const at = (t: string, fired: boolean) => ({
    eval_time: t,
    alertname: name,
    exp_alerts: fired ? [{ exp_labels: labels, exp_annotations: annotations }] : [],
  });
  const test = {
    rule_files: ['rules.yaml'],
    evaluation_interval: '1m',
    tests: [
      {
        interval: '1m',
        input_series: Object.entries(c.series).map(([series, values]) => ({ series, values })),
        alert_rule_test: [
          ...(c.pendingAt !== undefined ? [at(c.pendingAt, false)] : []),
          at(c.firesAt, true),
          at(c.clearsAt, false),
        ],
      },
    ],
  };
  const file = join(dir, `${name}.test.yaml`);
  writeFileSync(file, stringify(test));
  const promtool = testEnv().bins.promtool;
  expect(promtool, 'promtool (Debian package prometheus, installed by scripts/setup.sh)').not.toBe('');
  const res = await execa(promtool, ['test', 'rules', file], { reject: false, cwd: dir });
  return { code: res.exitCode ?? 1, out: `${res.stdout}\n${res.stderr}` };
}

describe('promtool test rules: each alert fires and clears', () => {
  it.each(Object.keys(CASES))('%s', async (name) => {
    const r = await promtoolTest(name, CASES[name]!);
    expect(r.out).toContain('SUCCESS');
    expect(r.code).toBe(0);
  });

  it('a case that expects the wrong thing fails (the harness can fail)', async () => {
    const c = CASES.ImdsgateNotReady!;
    const r = await promtoolTest('ImdsgateNotReady', { ...c, firesAt: c.clearsAt });
    expect(r.code).not.toBe(0);
  });

  it('every alert the chart renders has a case', () => {
    expect(rules.map((r) => r.alert).sort()).toEqual(Object.keys(CASES).sort());
  });
});
