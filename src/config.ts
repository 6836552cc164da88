// Configuration: every flag and IMDSGATE_* variable is declared once in OPTIONS, validated once by
// one valibot schema (which also yields the Config type), then frozen. Bad configuration is reported as a
// single error listing every problem, before any port opens or any rule is installed.
// valibot rather than zod: the same schema-and-type model at ~1 MB of heap instead of ~3.5 MB, which
// stays resident for the agent's life on every node (bench/frontdoor RESULTS.md).
import * as v from 'valibot';
import { readFlags } from './config-flags.js';
import { checkBaseRoleArn, checkRoleArn, toRoleArn } from './arn.js';
import { parseHostPort } from './host-port.js';
import { ipFamily, resolveHostAddresses } from './ip.js';
import { NetfilterError } from './netfilter/errors.js';
import { dnatTarget, interceptedFamilies, ipv6Only, parseInterfaces } from './netfilter/render.js';
import { SANDBOX_BINDING_MODES } from './pods/sandbox.js';

const nonEmpty = v.pipe(v.string(), v.minLength(1, 'must not be empty'));
const pattern = (re: RegExp, message: string) => v.pipe(v.string(), v.regex(re, message));
const hostPort = v.pipe(
  v.string(),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const r = parseHostPort(dataset.value);
    if ('problem' in r) addIssue({ message: r.problem });
  }),
);
const httpUrl = v.pipe(
  v.string(),
  v.check(
    (s) => URL.canParse(s) && /^https?:$/.test(new URL(s).protocol),
    'must be an http:// or https:// URL',
  ),
);
// One ARN rule for flags, identity file, decision and STS (src/arn.ts): what one accepts, none refuses.
const roleArn = v.pipe(
  v.string(),
  v.check(
    (s) => checkRoleArn(s) === undefined,
    'must be an IAM role ARN: arn:PARTITION:iam::ACCOUNT:role/[path/]name',
  ),
);
const list = v.pipe(
  v.union([v.string(), v.array(v.string())]),
  v.transform((x) =>
    typeof x === 'string'
      ? x
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : x,
  ),
  v.array(nonEmpty),
);
const bool = v.pipe(
  v.union([v.boolean(), v.string()]),
  v.transform((x) => (typeof x === 'string' ? x.toLowerCase() : x)),
  v.union(
    [
      v.boolean(),
      v.pipe(
        v.picklist(['true', 'false', '1', '0']),
        v.transform((s) => s === 'true' || s === '1'),
      ),
    ],
    'must be true|false|1|0',
  ),
);
const int = (min: number, max: number) =>
  v.pipe(
    v.union([v.string(), v.number()]),
    v.transform(Number),
    v.number('must be a number'),
    v.integer('must be a whole number'),
    v.minValue(min, `must be at least ${min}`),
    v.maxValue(max, `must be at most ${max}`),
  );
/** An empty value (`--flag=` or `IMDSGATE_X=`) means unset. */
const optional = <T extends v.GenericSchema>(s: T) =>
  v.pipe(
    v.unknown(),
    v.transform((x) => (x === '' ? undefined : x)),
    v.optional(s),
  );
const oneOf = <const T extends readonly string[]>(values: T) =>
  v.picklist(values, `must be one of ${values.join('|')}`);

/** kind decides how the flag parser reads it; help feeds `--help` and docs/configuration.md. */
interface OptionSpec {
  readonly kind: 'string' | 'boolean';
  readonly multiple?: boolean;
  readonly help: string;
  readonly default?: string | boolean;
  readonly schema: v.GenericSchema;
}

export const OPTIONS = {
  listen: {
    kind: 'string',
    default: '0.0.0.0:8181',
    help: 'address the pods are DNATed to',
    schema: hostPort,
  },
  metricsListen: {
    kind: 'string',
    default: '0.0.0.0:9181',
    help: 'address of /metrics, /healthz, /readyz',
    schema: hostPort,
  },
  upstream: {
    kind: 'string',
    default: 'http://169.254.169.254',
    help: 'the real instance metadata service',
    schema: httpUrl,
  },
  upstreamTimeoutMs: {
    kind: 'string',
    default: '800',
    help: 'per-request timeout towards upstream IMDS (SDKs give up at 1 s)',
    schema: int(50, 30_000),
  },
  credentialWaitMs: {
    kind: 'string',
    default: '900',
    help:
      'how long a credential request waits for an STS call before a 503 (the call goes on and serves ' +
      'later requests; SDKs give up at 1 s)',
    schema: int(100, 30_000),
  },
  identityFile: {
    kind: 'string',
    help: 'YAML map of pod IP to identity (demo/tests; replaces the Kubernetes watch)',
    schema: optional(nonEmpty),
  },
  kubeconfig: {
    kind: 'string',
    help: 'kubeconfig path; in-cluster service account when unset',
    schema: optional(nonEmpty),
  },
  nodeName: {
    kind: 'string',
    help: 'this node (Downward API spec.nodeName); required with the Kubernetes watch',
    schema: optional(nonEmpty),
  },
  // On a real kubelet a new pod's IP reaches the API 0.5-1 s after its containers start, and its first
  // SDK request comes at once (test/node, docs/node-testbed.md); SDKs give up after 1 s.
  unknownPodWaitMs: {
    kind: 'string',
    default: '900',
    help: 'how long a request from an unknown IP waits for the pod watch to catch up',
    schema: int(0, 10_000),
  },
  maxConnections: {
    kind: 'string',
    default: '4096',
    help:
      'open front-door connections at most, all sources together; more are closed unanswered ' +
      '(an open connection costs 7-21 KiB, docs/limits.md)',
    schema: int(16, 65_536),
  },
  maxConnectionsPerSource: {
    kind: 'string',
    default: '128',
    help: 'open connections at most per source address (pod IP); more are answered 429 and closed',
    schema: int(1, 65_536),
  },
  maxRequestsPerSource: {
    kind: 'string',
    default: '128',
    help: 'requests in flight at most per source address; more are answered 429',
    schema: int(1, 65_536),
  },
  headersTimeoutMs: {
    kind: 'string',
    default: '5000',
    help: 'deadline for the first byte and for the complete request head of each connection and request',
    schema: int(500, 60_000),
  },
  sandboxBinding: {
    kind: 'string',
    default: 'auto',
    help:
      'Kubernetes mode: bind requests to the pod sandbox that sent them (docs/identity.md). auto: by the ' +
      'host route of each pod IP where the CNI installs one, else by its host-local lease ' +
      '(--ipam-lease-dir), else quarantine; route: require a route or lease; ' +
      'quarantine: Terminating and departed pods lose identity paths; off: the API view alone',
    schema: v.picklist(SANDBOX_BINDING_MODES, `must be one of ${SANDBOX_BINDING_MODES.join('|')}`),
  },
  ipamLeaseDir: {
    kind: 'string',
    default: '/var/lib/cni/networks',
    help:
      'Kubernetes mode: the host-local IPAM lease directory (its dataDir), read-only, whose lease files name ' +
      'the sandbox holding each pod IP: the per-pod signal of --sandbox-binding where a CNI installs no ' +
      'host route per pod (bridge, flannel, kubenet; docs/identity.md); empty = no lease signal',
    schema: v.pipe(
      v.string(),
      v.check(
        (p) => p === '' || (/^\/[^\0]*$/.test(p) && !/(^|\/)\.\.?(\/|$)/.test(p)),
        'must be an absolute path without . or .. segments, or empty',
      ),
    ),
  },
  maxPodViewStalenessSeconds: {
    kind: 'string',
    default: '180',
    help:
      'Kubernetes mode: fail closed (credential and iam paths 503, /readyz not ready) once the pod, namespace ' +
      'or service-account view has heard nothing from the API server (list, event or the bookmark it sends ' +
      'every minute) for this long, since an IP may meanwhile belong to a pod the view has not seen, or an ' +
      'annotation may have changed; 0 = never',
    schema: int(0, 86_400),
  },
  // client-go's defaults (rest.Config QPS 5, burst 10). An agent needs 6 requests to start (3 lists, 3
  // watches) and then about one watch re-open a minute; API Priority and Fairness is the server's own
  // limit (docs/large-clusters.md).
  kubeApiQps: {
    kind: 'string',
    default: '5',
    help:
      'Kubernetes mode: requests per second the agent starts towards the API server at most, sustained ' +
      "(client-side token bucket, as client-go's; the later pages of one list take no token); 0 = no " +
      'client-side limit',
    schema: int(0, 1000),
  },
  kubeApiBurst: {
    kind: 'string',
    default: '10',
    help: 'Kubernetes mode: requests the agent may start at once towards the API server after a quiet spell',
    schema: int(1, 1000),
  },
  stsEndpoint: {
    kind: 'string',
    help: 'STS endpoint URL; default is the regional endpoint',
    schema: optional(httpUrl),
  },
  region: {
    kind: 'string',
    help: 'AWS region; discovered from the upstream identity document when unset',
    schema: optional(pattern(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'must look like us-east-1')),
  },
  imdsv1: {
    kind: 'string',
    default: 'allow',
    help: 'serve token-less (IMDSv1) requests: allow|deny; namespaces may override',
    schema: oneOf(['allow', 'deny']),
  },
  allowPath: {
    kind: 'string',
    multiple: true,
    help: 'extra canonical path globs forwarded upstream (repeatable or comma list)',
    schema: v.optional(list, []),
  },
  denyPath: {
    kind: 'string',
    multiple: true,
    help: 'extra canonical path globs concealed (404); deny wins over allow',
    schema: v.optional(list, []),
  },
  credentialMode: {
    kind: 'string',
    default: 'assume-role',
    help: 'assume-role (node credentials sign AssumeRole) | web-identity (TokenRequest + AssumeRoleWithWebIdentity)',
    schema: oneOf(['assume-role', 'web-identity']),
  },
  tokenAudience: {
    kind: 'string',
    default: 'sts.amazonaws.com',
    help: 'audience of service-account tokens in web-identity mode',
    schema: nonEmpty,
  },
  sessionDurationSeconds: {
    kind: 'string',
    default: '3600',
    help: 'STS session duration, 1800-43200 (3600 at most for assume-role: role chaining)',
    // STS accepts 900, but pods must always receive credentials with more than 25 min left (botocore's
    // expiry-extension window, docs/protocol.md §13 #26), so a session shorter than 30 min
    // could never be served.
    schema: int(1800, 43_200),
  },
  externalId: {
    kind: 'string',
    help: 'default ExternalId for AssumeRole',
    schema: optional(pattern(/^[\w+=,.@:/-]{2,1224}$/, 'must be 2-1224 of [\\w+=,.@:/-]')),
  },
  sessionTags: {
    kind: 'boolean',
    default: false,
    help: 'attach kubernetes-* session tags for ABAC (as EKS Pod Identity does)',
    schema: bool,
  },
  baseRoleArn: {
    kind: 'string',
    help: 'prefix that turns a bare role name into an ARN, e.g. arn:aws:iam::123456789012:role/',
    schema: optional(
      v.pipe(
        v.string(),
        v.check((s) => checkBaseRoleArn(s) === undefined, 'must be arn:PARTITION:iam::ACCOUNT:role/[path/]'),
      ),
    ),
  },
  defaultRole: {
    kind: 'string',
    help: 'role for pods that name none (off by default; still subject to namespace policy)',
    // A name (with --base-role-arn or the discovered account) or a full ARN, which must then be a valid one.
    schema: optional(
      v.pipe(
        nonEmpty,
        v.check(
          (s) => 'arn' in toRoleArn(s, 'arn:aws:iam::000000000000:role/'),
          'must be a role name or an IAM role ARN',
        ),
      ),
    ),
  },
  requireNamespaceAllow: {
    kind: 'boolean',
    default: false,
    help: 'every namespace must allow a role explicitly',
    schema: bool,
  },
  namespaceRestrictionFormat: {
    kind: 'string',
    default: 'glob',
    help: 'how iam.amazonaws.com/allowed-roles entries are read: glob | regexp (always anchored)',
    schema: oneOf(['glob', 'regexp']),
  },
  interfaces: {
    kind: 'string',
    multiple: true,
    default: 'eni+,cali+,lxc+,veth+,cni0',
    help: 'pod-facing interface patterns intercepted; prefix with ! to intercept every interface but these',
    schema: list,
  },
  hostIp: {
    kind: 'string',
    help: 'node address the rules DNAT to (Downward API status.hostIP; an IPv6 one counts as --host-ipv6); default: the listen address',
    schema: optional(
      v.pipe(
        v.string(),
        v.check((s) => ipFamily(s) !== undefined, 'must be an IPv4 or IPv6 address'),
      ),
    ),
  },
  hostIps: {
    kind: 'string',
    multiple: true,
    help: 'node addresses, one per family (Downward API status.hostIPs); fill --host-ip and --host-ipv6 when unset',
    schema: optional(list),
  },
  hostIpv6: {
    kind: 'string',
    help: 'node IPv6 address the ip6tables rule DNATs to (with --ipv6); default: the listen address',
    schema: optional(
      v.pipe(
        v.string(),
        v.check((s) => ipFamily(s) === 'ipv6', 'must be an IPv6 address'),
      ),
    ),
  },
  ipv6: {
    kind: 'boolean',
    default: false,
    help: 'also intercept [fd00:ec2::254] with ip6tables (always on a node with only an IPv6 address)',
    schema: bool,
  },
  manageRules: {
    kind: 'boolean',
    default: true,
    help: 'install and reconcile the interception rules',
    schema: bool,
  },
  reconcileIntervalMs: {
    kind: 'string',
    default: '2000',
    help: 'how often the rules are checked and repaired',
    schema: int(200, 60_000),
  },
  iptablesBackend: {
    kind: 'string',
    default: 'auto',
    help: 'auto (detect as kube-proxy does) | nft | legacy',
    schema: oneOf(['auto', 'nft', 'legacy']),
  },
  startupTaint: {
    kind: 'string',
    help: 'taint key the agent removes from its node once ready (node-boot guard)',
    schema: optional(nonEmpty),
  },
  daemonset: {
    kind: 'string',
    help:
      "namespace/name of the agent's own DaemonSet: when the agent has seen it deleted (helm uninstall), " +
      'it removes its rules as it stops; unset, the rules always stay',
    schema: optional(
      pattern(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/, 'must be namespace/name'),
    ),
  },
  logLevel: {
    kind: 'string',
    default: 'info',
    help: 'trace|debug|info|warn|error',
    schema: oneOf(['trace', 'debug', 'info', 'warn', 'error']),
  },
} satisfies Record<string, OptionSpec>;

export type OptionKey = keyof typeof OPTIONS;

const schema = v.object(
  Object.fromEntries(Object.entries(OPTIONS).map(([k, o]) => [k, o.schema])) as {
    [K in OptionKey]: (typeof OPTIONS)[K]['schema'];
  },
);

export type Config = Readonly<v.InferOutput<typeof schema>> & { readonly roleArnSchema?: never };

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** `--metrics-listen` for metricsListen. */
export const flagName = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
/** IMDSGATE_METRICS_LISTEN for metricsListen. */
export const envName = (key: string): string => `IMDSGATE_${flagName(key).replace(/-/g, '_').toUpperCase()}`;

const entries = Object.entries(OPTIONS) as [OptionKey, OptionSpec][];

/** Reads flags (which win) and IMDSGATE_* variables once; returns a frozen Config or throws ConfigError. */
export function loadConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  opts: { command?: string } = {},
): Config {
  const problems: string[] = [];
  let values: Record<string, unknown> = {};
  try {
    values = readFlags(
      argv,
      Object.fromEntries(
        entries.map(([k, o]) => [flagName(k), { type: o.kind, multiple: o.multiple ?? false }]),
      ),
    );
  } catch (err) {
    problems.push((err as Error).message);
  }
  const raw: Record<string, unknown> = {};
  for (const [key, o] of entries) {
    const fromFlag = values[flagName(key)];
    const fromEnv = env[envName(key)];
    raw[key] = Array.isArray(fromFlag) ? fromFlag.join(',') : (fromFlag ?? fromEnv ?? o.default);
  }
  // abortPipeEarly: one message per bad value (a malformed HOST:PORT is not also a bad port number).
  const parsed = v.safeParse(schema, raw, { abortPipeEarly: true });
  if (!parsed.success) {
    for (const issue of parsed.issues) {
      const key = String(issue.path?.[0]?.key ?? '');
      problems.push(
        `--${flagName(key)} / ${envName(key)}: ${issue.message} (got ${JSON.stringify(raw[key])})`,
      );
    }
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const { problems: addressProblems, ...addresses } = resolveHostAddresses(parsed.output);
  const cfg = { ...parsed.output, hostIp: addresses.hostIp, hostIpv6: addresses.hostIpv6 };
  problems.push(...addressProblems);
  problems.push(...crossChecks(cfg, opts.command ?? 'serve'));
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(cfg) as Config;
}

/** Rules that involve more than one option. */
function crossChecks(cfg: v.InferOutput<typeof schema>, command: string): string[] {
  const out: string[] = [];
  // `rules` and `uninstall` only touch netfilter; they never look a pod up.
  const needsIdentity = command !== 'rules' && command !== 'uninstall';
  if (needsIdentity && cfg.identityFile === undefined && cfg.nodeName === undefined) {
    out.push('--node-name / IMDSGATE_NODE_NAME is required unless --identity-file is given');
  }
  if (cfg.startupTaint !== undefined && cfg.nodeName === undefined) {
    out.push(
      '--startup-taint needs --node-name / IMDSGATE_NODE_NAME (the agent removes it from its own node)',
    );
  }
  if (cfg.daemonset !== undefined && (cfg.identityFile !== undefined || !cfg.manageRules)) {
    out.push('--daemonset needs the Kubernetes watch and --manage-rules (it removes the rules on uninstall)');
  }
  // AWS: role chaining (node instance-profile credentials assuming the pod role) caps sessions at 1 h.
  // https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_terms-and-concepts.html#iam-term-role-chaining
  if (cfg.credentialMode === 'assume-role' && cfg.sessionDurationSeconds > 3600) {
    out.push('--session-duration-seconds: at most 3600 with --credential-mode=assume-role (role chaining)');
  }
  // The rules the agent (or `imdsgate rules`) will install: a bad --interfaces or a DNAT target that cannot
  // be derived (--host-ip) is a usage error found here, before any port opens, not after.
  if ((command === 'serve' && cfg.manageRules) || command === 'rules') {
    const checks = [
      () => parseInterfaces(cfg.interfaces),
      // An IPv6-only node has no IPv4 target: its IPv4 rules drop instead (netfilter/render.ts ipv6Only).
      ...interceptedFamilies(cfg)
        .filter((f) => f === 'ipv6' || !ipv6Only(cfg))
        .map((f) => () => dnatTarget(f, cfg)),
    ];
    for (const check of checks) {
      try {
        check();
      } catch (err) {
        if (!(err instanceof NetfilterError)) throw err;
        out.push(err.message);
      }
    }
  }
  return out;
}

export { roleArn as roleArnSchema };

/** The `--help` table, also rendered into docs/configuration.md by a test. */
export function optionsHelp(): string {
  return entries
    .map(([k, o]) => {
      const def = o.default === undefined ? '' : ` (default ${String(o.default)})`;
      return `  --${flagName(k)}  ${envName(k)}\n      ${o.help}${def}`;
    })
    .join('\n');
}
