// The chart, proved with the real helm binary: lint over every scenario, rendering details that matter for
// safety (capabilities, fail-closed rollout, probes, env mapping), schema and template refusals with their
// messages, and the observability pack (promtool check rules; dashboard metrics exist in src/metrics.ts).
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { OPTIONS, envName, loadConfig } from '../../../src/config.js';
import { parseHostPort } from '../../../src/host-port.js';
import { testEnv } from '../../env/index.js';
import { CHART, find, helm, KUBE_VERSION, render, ROOT, templateArgs, type KubeObject } from './helpers.js';

const SCENARIOS = readdirSync(join(CHART, 'ci')).filter((f) => f.endsWith('-values.yaml'));
const ci = (f: string) => join(CHART, 'ci', f);

type Container = {
  env: { name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }[];
  securityContext: Record<string, unknown> & { capabilities: { add?: string[]; drop: string[] } };
  livenessProbe?: { httpGet: { path: string; port: string } };
  readinessProbe?: { httpGet: { path: string; port: string } };
  resources: unknown;
};
const podSpec = (ds: KubeObject) =>
  (ds.spec as { template: { spec: Record<string, unknown> } }).template.spec;
const container = (ds: KubeObject) => (podSpec(ds).containers as Container[])[0]!;
const envOf = (ds: KubeObject) =>
  Object.fromEntries(container(ds).env.map((e) => [e.name, e.value ?? e.valueFrom]));

/** Every metric name src/metrics.ts defines, with the series names histograms expose. */
export function definedMetrics(): Set<string> {
  const src = readFileSync(join(ROOT, 'src/metrics.ts'), 'utf8');
  const names = new Set<string>();
  for (const m of src.matchAll(/new (Counter|Gauge|Histogram)\(\{\s*name: '([a-z_:][a-z0-9_:]*)'/g)) {
    names.add(m[2]!);
    if (m[1] === 'Histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m[2]! + s);
  }
  return names;
}

const metricsIn = (expr: string) => [...expr.matchAll(/\bimdsgate_[a-z0-9_]+/g)].map((m) => m[0]);

describe('helm lint --strict', () => {
  it.each(SCENARIOS)('%s', async (file) => {
    const r = await helm(['lint', '--strict', CHART, '--kube-version', KUBE_VERSION, '-f', ci(file)]);
    expect(r.stderr + r.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(r.code).toBe(0);
  });

  it('refuses clusters older than 1.30 (admission policy v1, node name in tokens)', async () => {
    const r = await helm(['template', 'r', CHART, '--kube-version', '1.29.9']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('chart requires kubeVersion: >=1.30.0-0');
  });

  it('values.yaml documents every key with a comment starting with its name', async () => {
    const r = await execa('node', [join(CHART, 'values-table.mjs'), '--check'], { reject: false });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
  });
});

describe('the DaemonSet', () => {
  it('runs on the host network, everywhere, and never surges (fail-closed rollout)', async () => {
    const ds = find(await render(), 'DaemonSet');
    const spec = podSpec(ds);
    expect(spec.hostNetwork).toBe(true);
    expect(spec.dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(spec.priorityClassName).toBe('system-node-critical');
    expect(spec.tolerations).toEqual([{ operator: 'Exists' }]);
    expect((ds.spec as { updateStrategy: unknown }).updateStrategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: 1, maxSurge: 0 },
    });
    const c = container(ds);
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    expect(c.resources).toEqual({ requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '256Mi' } });
    expect(spec.volumes).toContainEqual({
      name: 'xtables-lock',
      hostPath: { path: '/run/xtables.lock', type: 'FileOrCreate' },
    });
  });

  it('takes node name and host IP from the Downward API and binds to the node IP', async () => {
    const env = envOf(find(await render(), 'DaemonSet'));
    expect(env.IMDSGATE_NODE_NAME).toEqual({ fieldRef: { fieldPath: 'spec.nodeName' } });
    expect(env.IMDSGATE_HOST_IP).toEqual({ fieldRef: { fieldPath: 'status.hostIP' } });
    expect(env.IMDSGATE_HOST_IPS).toEqual({ fieldRef: { fieldPath: 'status.hostIPs' } });
    // Bracketed, so an IPv6 status.hostIP (IPv6-only node) is a valid listen address too (src/host-port.ts).
    expect(env.IMDSGATE_LISTEN).toBe('[$(IMDSGATE_HOST_IP)]:8181');
    expect(env.IMDSGATE_METRICS_LISTEN).toBe('[$(IMDSGATE_HOST_IP)]:9181');
    expect(env.IMDSGATE_STARTUP_TAINT).toBeUndefined();
  });

  it.each([
    ['::', '[::]:8181'],
    ['fd00:100::1', '[fd00:100::1]:8181'],
    ['0.0.0.0', '[0.0.0.0]:8181'],
  ])('bindAddress %s listens at %s, a listen address the agent accepts', async (addr, want) => {
    const env = envOf(find(await render({ set: [`bindAddress=${addr}`] }), 'DaemonSet'));
    expect(env.IMDSGATE_LISTEN).toBe(want);
    expect(parseHostPort(want as string)).toMatchObject({ port: 8181 });
  });

  it.each([
    ['auto', ['NET_ADMIN', 'NET_RAW']],
    ['legacy', ['NET_ADMIN', 'NET_RAW']],
    ['nft', ['NET_ADMIN']],
  ])('backend %s: root with only %j, everything else dropped, read-only root', async (backend, caps) => {
    const sc = container(
      find(await render({ set: [`config.iptablesBackend=${backend}`] }), 'DaemonSet'),
    ).securityContext;
    expect(sc.capabilities).toEqual({ drop: ['ALL'], add: caps });
    expect(sc).toMatchObject({
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
    });
  });

  it('without manageRules runs non-root with no capabilities', async () => {
    const sc = container(
      find(await render({ files: [ci('no-rules-values.yaml')] }), 'DaemonSet'),
    ).securityContext;
    expect(sc).toMatchObject({ runAsNonRoot: true, runAsUser: 65534, capabilities: { drop: ['ALL'] } });
    expect(sc.capabilities.add).toBeUndefined();
  });

  it('maps every config key to the IMDSGATE_* variable src/config.ts reads', async () => {
    const values = (await import('yaml')).parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as {
      config: Record<string, unknown>;
    };
    const set = [
      'config.stsEndpoint=https://sts.example.com',
      'config.region=eu-west-1',
      'config.externalId=ext-1',
      'config.baseRoleArn=arn:aws:iam::123456789012:role/',
      'config.defaultRole=fallback',
      'config.allowPath={/a/*,/b}',
      'config.denyPath={/c}',
      'config.hostIpv6=fd00::1',
    ];
    const env = envOf(find(await render({ set }), 'DaemonSet'));
    for (const key of Object.keys(values.config)) {
      expect(Object.keys(OPTIONS), `config.${key} is not an option of src/config.ts`).toContain(key);
      expect(env, `config.${key}`).toHaveProperty(envName(key));
    }
    expect(env.IMDSGATE_ALLOW_PATH).toBe('/a/*,/b');
    expect(env.IMDSGATE_INTERFACES).toBe('eni+,cali+,lxc+,veth+,cni0');
    expect(env.IMDSGATE_SESSION_DURATION_SECONDS).toBe('3600');
    expect(env.IMDSGATE_UPSTREAM_TIMEOUT_MS).toBe('800');
  });

  it('leaves empty settings unset so the agent default applies', async () => {
    const env = envOf(find(await render(), 'DaemonSet'));
    for (const k of [
      'IMDSGATE_REGION',
      'IMDSGATE_DEFAULT_ROLE',
      'IMDSGATE_ALLOW_PATH',
      'IMDSGATE_STS_ENDPOINT',
    ]) {
      expect(env).not.toHaveProperty(k);
    }
  });

  it('mounts host-local\u2019s lease directory read-only at its own path; empty: no mount, no leases', async () => {
    const ds = find(await render(), 'DaemonSet');
    expect(envOf(ds).IMDSGATE_IPAM_LEASE_DIR).toBe('/var/lib/cni/networks');
    expect((container(ds) as { volumeMounts?: unknown[] }).volumeMounts).toContainEqual({
      name: 'ipam-leases',
      mountPath: '/var/lib/cni/networks',
      readOnly: true,
    });
    expect(podSpec(ds).volumes).toContainEqual({
      name: 'ipam-leases',
      hostPath: { path: '/var/lib/cni/networks', type: 'DirectoryOrCreate' },
    });
    const off = find(await render({ set: ['config.ipamLeaseDir='] }), 'DaemonSet');
    expect(envOf(off).IMDSGATE_IPAM_LEASE_DIR).toBe('');
    expect(JSON.stringify(podSpec(off).volumes)).not.toContain('ipam-leases');
    await expect(render({ set: ['config.ipamLeaseDir=/var/lib/../etc'] })).rejects.toThrow(/ipamLeaseDir/);
  });

  it('schema number bounds are the bounds src/config.ts accepts', () => {
    const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as {
      properties: { config: { properties: Record<string, { minimum?: number; maximum?: number }> } };
    };
    const accepts = (key: string, v: number) => {
      const env = { IMDSGATE_CREDENTIAL_MODE: 'web-identity', [envName(key)]: String(v) };
      try {
        loadConfig(['--node-name', 'n', '--host-ip', '169.254.100.1'], env);
        return true;
      } catch {
        return false;
      }
    };
    for (const [key, prop] of Object.entries(schema.properties.config.properties)) {
      if (prop.minimum === undefined || prop.maximum === undefined) continue;
      expect([accepts(key, prop.minimum - 1), accepts(key, prop.minimum)], `${key} minimum`).toEqual([
        false,
        true,
      ]);
      expect([accepts(key, prop.maximum), accepts(key, prop.maximum + 1)], `${key} maximum`).toEqual([
        true,
        false,
      ]);
    }
  });

  it('schema enums are the enums src/config.ts accepts', () => {
    const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as {
      properties: { config: { properties: Record<string, { enum?: string[] }> } };
    };
    for (const [key, prop] of Object.entries(schema.properties.config.properties)) {
      if (prop.enum === undefined) continue;
      const picklist = (OPTIONS as unknown as Record<string, { schema: { options?: string[] } }>)[key]!
        .schema;
      expect(prop.enum, key).toEqual(picklist.options);
    }
  });
});

describe('helm test', () => {
  it('a plain pod (no hostNetwork) expecting 404, or exactly tests.roleArn’s role name', async () => {
    const pick = async (set: string[]) => {
      const objs = await render({ set, showOnly: 'templates/tests/credentials-test.yaml' });
      const pod = find(objs, 'Pod');
      const sa = find(objs, 'ServiceAccount');
      const c = (pod.spec as { containers: Container[] }).containers[0]!;
      return { pod, sa, want: c.env.find((e) => e.name === 'WANT_ROLE')?.value };
    };
    const plain = await pick([]);
    expect(plain.pod.metadata.annotations?.['helm.sh/hook']).toBe('test');
    expect((plain.pod.spec as { hostNetwork?: boolean }).hostNetwork).toBeUndefined();
    expect(plain.want).toBe('');
    expect(plain.sa.metadata.annotations?.['eks.amazonaws.com/role-arn']).toBeUndefined();
    const withRole = await pick(['tests.roleArn=arn:aws:iam::123456789012:role/team/probe']);
    expect(withRole.want).toBe('probe');
    expect(withRole.sa.metadata.annotations?.['eks.amazonaws.com/role-arn']).toBe(
      'arn:aws:iam::123456789012:role/team/probe',
    );
  });
});

describe('RBAC and the node-boot guard', () => {
  const rules = (objs: KubeObject[]) =>
    find(objs, 'ClusterRole').rules as { resources: string[]; verbs: string[] }[];
  const resources = (objs: KubeObject[]) => rules(objs).flatMap((r) => r.resources);

  it('grants exactly pods, namespaces, serviceaccounts (read) and events (create) by default', async () => {
    const objs = await render();
    expect(resources(objs).sort()).toEqual(['events', 'namespaces', 'pods', 'serviceaccounts']);
    for (const r of rules(objs)) {
      if (r.resources.includes('events')) expect(r.verbs).toEqual(['create']);
      else expect(r.verbs).toEqual(['get', 'list', 'watch']);
    }
    expect(objs.some((o) => o.kind === 'ValidatingAdmissionPolicy')).toBe(false);
  });

  it('adds serviceaccounts/token create only in web-identity mode, nodes get/patch only with the startup taint', async () => {
    const objs = await render({ files: [ci('full-values.yaml')] });
    expect(rules(objs)).toContainEqual({
      apiGroups: [''],
      resources: ['serviceaccounts/token'],
      verbs: ['create'],
    });
    expect(rules(objs)).toContainEqual({ apiGroups: [''], resources: ['nodes'], verbs: ['get', 'patch'] });
    expect(envOf(find(objs, 'DaemonSet')).IMDSGATE_STARTUP_TAINT).toBe('imdsgate.io/agent-not-ready');
    const vap = find(objs, 'ValidatingAdmissionPolicy');
    expect(JSON.stringify(vap)).toContain('system:serviceaccount:imdsgate-system:r-imdsgate');
  });

  it('renders no RBAC with rbac.create=false', async () => {
    const objs = await render({ files: [ci('no-rules-values.yaml')] });
    const installed = objs.filter((o) => o.metadata.annotations?.['helm.sh/hook'] === undefined);
    expect(installed.map((o) => o.kind)).toEqual(['DaemonSet']);
  });
});

describe('invalid values are refused with a readable message', () => {
  it.each([
    [['ports.agent=70000'], "at '/ports/agent': maximum: got 70,000, want 65,535"],
    [['ports.metrics=0'], "at '/ports/metrics': minimum: got 0, want 1"],
    [['ports.agent=http'], "at '/ports/agent': got string, want integer"],
    [['config.imdsv1=maybe'], "at '/config/imdsv1': value must be one of 'allow', 'deny'"],
    [
      ['config.credentialMode=irsa'],
      "at '/config/credentialMode': value must be one of 'assume-role', 'web-identity'",
    ],
    [
      ['config.iptablesBackend=iptables'],
      "at '/config/iptablesBackend': value must be one of 'auto', 'nft', 'legacy'",
    ],
    [['config.logLevel=verbose'], "at '/config/logLevel': value must be one of"],
    [
      ['config.sessionDurationSeconds=900'],
      "at '/config/sessionDurationSeconds': minimum: got 900, want 1,800",
    ],
    [['config.manageRules=yes'], "at '/config/manageRules': got string, want boolean"],
    [['config.bogus=1'], "at '/config': additional properties 'bogus' not allowed"],
    [['imageTag=1'], "at '': additional properties 'imageTag' not allowed"],
    [
      ['image.pullPolicy=Sometimes'],
      "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
    ],
    [['image.digest=latest'], "at '/image/digest': 'latest' does not match pattern"],
    [['config.baseRoleArn=arn:aws:iam::123:role/'], "at '/config/baseRoleArn'"],
    [['config.region=Europe'], "at '/config/region': 'Europe' does not match pattern"],
    [['config.upstream=169.254.169.254'], "at '/config/upstream': '169.254.169.254' does not match pattern"],
    [['bindAddress=node-ip'], "at '/bindAddress': 'node-ip' does not match pattern"],
    [['startupTaint.key=not a key'], "at '/startupTaint/key': 'not a key' does not match pattern"],
    [
      ['updateStrategy.type=Recreate'],
      "at '/updateStrategy/type': value must be one of 'RollingUpdate', 'OnDelete'",
    ],
    [['tests.roleArn=my-role'], "at '/tests/roleArn': 'my-role' does not match pattern"],
    [['ports.metrics=8181'], 'ports.agent and ports.metrics must differ (both bind on the host network)'],
    [
      ['config.sessionDurationSeconds=7200'],
      'config.sessionDurationSeconds: at most 3600 with config.credentialMode=assume-role (role chaining)',
    ],
    [['config.ipv6=true', 'config.manageRules=false'], 'config.ipv6 needs config.manageRules'],
    [['metrics.serviceMonitor.enabled=true'], 'metrics.serviceMonitor.enabled needs metrics.service.enabled'],
    [['serviceAccount.create=false'], 'serviceAccount.name is required when serviceAccount.create is false'],
  ])('%j', async (set, message) => {
    const r = await helm(templateArgs({ set }));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(message);
  });
});

describe('observability pack', () => {
  it('promtool check rules accepts the PrometheusRule groups', async () => {
    const rule = find(await render({ set: ['prometheusRule.enabled=true'] }), 'PrometheusRule');
    const dir = mkdtempSync(join(tmpdir(), 'imdsgate-rules-'));
    const file = join(dir, 'rules.yaml');
    writeFileSync(file, stringify({ groups: (rule.spec as { groups: unknown }).groups }));
    const r = await execa(promtool(), ['check', 'rules', file], { reject: false });
    rmSync(dir, { recursive: true, force: true });
    expect(r.stdout + r.stderr).toMatch(/SUCCESS: 11 rules found/);
    expect(r.exitCode).toBe(0);
  });

  it('alerts query only metrics that exist (or Prometheus up)', async () => {
    const rule = find(await render({ set: ['prometheusRule.enabled=true'] }), 'PrometheusRule');
    const defined = definedMetrics();
    const groups = (rule.spec as { groups: { rules: { alert: string; expr: string }[] }[] }).groups;
    const alerts = groups.flatMap((g) => g.rules);
    expect(alerts.map((a) => a.alert)).toEqual(
      expect.arrayContaining([
        'ImdsgateAgentDown',
        'ImdsgateRulesMissing',
        'ImdsgateRulesRepaired',
        'ImdsgateStsErrors',
        'ImdsgateDenialsSpike',
        'ImdsgatePodViewStale',
      ]),
    );
    for (const a of alerts)
      for (const m of metricsIn(a.expr)) expect(defined, `${a.alert}: ${m}`).toContain(m);
  });

  it('the dashboard parses, ships in its ConfigMap, and every metric it queries exists', async () => {
    const cm = find(await render({ set: ['dashboard.enabled=true'] }), 'ConfigMap');
    expect(cm.metadata.labels?.grafana_dashboard).toBe('1');
    const dash = JSON.parse((cm.data as Record<string, string>)['imdsgate.json']!) as {
      panels: { title: string; targets?: { expr: string }[] }[];
      templating: { list: { definition?: string }[] };
    };
    const exprs = [
      ...dash.panels.flatMap((p) => (p.targets ?? []).map((t) => [p.title, t.expr] as const)),
      ...dash.templating.list.filter((v) => v.definition).map((v) => ['variable', v.definition!] as const),
    ];
    expect(exprs.length).toBeGreaterThan(20);
    const defined = definedMetrics();
    const used = new Set<string>();
    for (const [title, expr] of exprs) {
      for (const m of metricsIn(expr)) {
        expect(defined, `${title}: ${m}`).toContain(m);
        used.add(m.replace(/_(bucket|sum|count)$/, ''));
      }
    }
    for (const m of [
      'imdsgate_requests_total',
      'imdsgate_decisions_total',
      'imdsgate_credential_cache_events_total',
      'imdsgate_upstream_request_duration_seconds',
    ]) {
      expect(used, `dashboard shows ${m}`).toContain(m);
    }
  });
});

export function promtool(): string {
  const p = testEnv().bins.promtool;
  if (!p) throw new Error('promtool not found: apt-get install prometheus');
  return p;
}

describe('values table', () => {
  it('docs/install-eks.md (and README.md when it has the markers) carry the current table', async () => {
    const mod = (await import(join(CHART, 'values-table.mjs'))) as { withValuesTable: (d: string) => string };
    for (const file of ['docs/install-eks.md', 'README.md']) {
      let doc: string;
      try {
        doc = readFileSync(join(ROOT, file), 'utf8');
      } catch {
        continue;
      }
      if (!doc.includes('<!-- values-table:start -->')) {
        expect(file, 'docs/install-eks.md must have the values-table markers').toBe('README.md');
        continue;
      }
      expect(doc, `${file}: run node charts/imdsgate/values-table.mjs --write ${file}`).toBe(
        mod.withValuesTable(doc),
      );
    }
  });
});
