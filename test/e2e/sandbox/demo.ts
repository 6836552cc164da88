// `npm run demo` (scripts/demo.sh compiles and runs this): the sandbox with two pods, one whose namespace
// allows its role and one whose namespace does not. Shows the first receive its role's credentials on
// 169.254.169.254 through the real DNAT, the second refused with the reason, the rules, and metrics.
// Everything it creates is removed on exit and on error (destroy()), and on Ctrl-C by the exit hooks of
// netns.ts (processes killed, namespaces deleted; the run's uniquely named Kubernetes objects remain).
import { cliIn } from './cli.js';
import { inNetns } from './netns.js';
import { BASE_ROLE_ARN, createSandbox, type Sandbox, type SandboxPod } from './sandbox.js';
import { METADATA_IP } from './topology.js';

const CREDS = '/latest/meta-data/iam/security-credentials/';
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s = '') => process.stdout.write(`${s}\n`);
const step = (s: string) => say(`\n${bold(`▸ ${s}`)}`);

async function main(): Promise<void> {
  step('building the sandbox: cloud (AEMM on 169.254.169.254), node (imdsgate), two pods');
  const sb = await createSandbox({
    pods: [
      { name: 'web', namespace: 'shop', role: 'shop-web' },
      { name: 'intruder', namespace: 'batch', role: 'shop-web', roleVia: 'pod-annotation' },
    ],
    allowedRoles: { shop: ['shop-web'], batch: ['batch-*'] },
  });
  try {
    const [web, intruder] = sb.pods as [SandboxPod, SandboxPod];
    for (const p of sb.pods) say(`  pod ${p.kubeNamespace}/${p.name}  ip ${p.ip}  netns ${p.netns}`);
    say(
      `  identity from: ${sb.identity === 'kube' ? 'the real kube-apiserver (pod watch)' : '--identity-file'}`,
    );
    step('starting the agent in the node namespace (it installs the interception rules)');
    await sb.startAgent();
    await showRules(sb);
    await showAllowed(sb, web);
    await showDenied(sb, intruder);
    await showMetrics(sb);
    say(`\nlogs of this run: ${sb.logDir}`);
  } finally {
    step('cleaning up: agent, mock IMDS, relays, pods, namespaces');
    await sb.destroy();
    say('done');
  }
}

async function showRules(sb: Sandbox): Promise<void> {
  step('interception rules in the node namespace (nat and raw tables)');
  for (const table of ['raw', 'nat']) {
    const r = await inNetns(sb.topology.node, 'iptables-save', ['-t', table]);
    for (const l of r.stdout.split('\n').filter((x) => x.includes('IMDSGATE'))) say(`  ${l}`);
  }
}

async function showAllowed(sb: Sandbox, pod: SandboxPod): Promise<void> {
  step(`pod ${pod.kubeNamespace}/${pod.name}: curl http://${METADATA_IP}${CREDS}`);
  const list = await sb.curl(pod, CREDS);
  say(`  HTTP ${list.status}: ${list.body}`);
  const creds = await sb.curl(pod, `${CREDS}${list.body}`);
  const doc = JSON.parse(creds.body) as Record<string, string>;
  say(`  HTTP ${creds.status}: Code=${doc.Code} AccessKeyId=${doc.AccessKeyId} Expiration=${doc.Expiration}`);
  say(`  (SecretAccessKey and Token hidden here; they are STS AssumeRole credentials for ${list.body})`);
}

async function showDenied(sb: Sandbox, pod: SandboxPod): Promise<void> {
  step(
    `pod ${pod.kubeNamespace}/${pod.name} (annotated with shop-web, namespace allows batch-*): same request`,
  );
  const list = await sb.curl(pod, CREDS);
  say(
    `  HTTP ${list.status}: ${
      list.body
        .split('\n')
        .find((l) => /<title>/.test(l))
        ?.trim() ?? list.body
    }`,
  );
  const denial = sb
    .agent()!
    .log()
    .split('\n')
    .filter((l) => l.includes('"reason"') && l.includes(pod.name))
    .pop();
  if (denial !== undefined) {
    const d = JSON.parse(denial) as Record<string, string>;
    say(`  agent log: ${d.msg}: reason=${d.reason} (${d.detail ?? ''})`);
  }
  if (sb.identity !== 'kube') return;
  step(`imdsgate explain --namespace ${pod.kubeNamespace} --pod ${pod.name}`);
  const explain = await cliIn(sb.topology.node, [
    'explain',
    '--namespace',
    pod.kubeNamespace,
    '--pod',
    pod.name,
    '--kubeconfig',
    sb.env.kube.adminKubeconfig,
    '--node-name',
    sb.nodeName,
    `--base-role-arn=${BASE_ROLE_ARN}`,
  ]);
  for (const l of `${explain.stdout}${explain.stderr}`.trim().split('\n')) say(`  ${l}`);
}

async function showMetrics(sb: Sandbox): Promise<void> {
  step('metrics excerpt (curl 127.0.0.1:9181/metrics in the node namespace)');
  const wanted =
    /^imdsgate_(requests_total|decisions_total|rules_installed|rules_repairs_total|sts_requests_total)\{/;
  for (const l of (await sb.metrics()).split('\n').filter((x) => wanted.test(x))) say(`  ${l}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
