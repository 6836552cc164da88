// App pods of the node test bed: real containers from the client image (AWS CLI v2, botocore,
// aws-sdk-go-v2, curl) on the CNI bridge, talking to the plain metadata address. Their scripts print one
// line per attempt; tests read the lines from the kubelet's log directory and trace every set of
// credentials to its role with STS GetCallerIdentity against moto.
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { testEnv } from '../env/index.js';
import { apply, CLIENT_IMAGE, freshNamespace, podLog, STS_URL, until } from './bed.js';

export const roleArn = (name: string) => `arn:aws:iam::123456789012:role/${name}`;

export interface ClientPod {
  namespace: string;
  name: string;
  serviceAccount?: string;
  annotations?: Record<string, string>;
  script: string;
  hostNetwork?: boolean;
}

export function clientPod(p: ClientPod): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: p.name, namespace: p.namespace, annotations: p.annotations ?? {} },
    spec: {
      serviceAccountName: p.serviceAccount ?? 'default',
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 1,
      hostNetwork: p.hostNetwork ?? false,
      containers: [
        {
          name: 'client',
          image: CLIENT_IMAGE,
          imagePullPolicy: 'Never',
          command: ['sh', '-c', p.script],
          env: [{ name: 'AWS_REGION', value: 'us-east-1' }],
          securityContext: { runAsNonRoot: true, runAsUser: 65534, allowPrivilegeEscalation: false },
        },
      ],
    },
  };
}

/** Each real client once, from the first instant of the container; one `CLIENT <json>` line each. */
export const SDK_CLIENTS_SCRIPT = [
  'export HOME=/tmp',
  'printf "awscli %s\\n" "$(aws configure export-credentials --format process 2>&1 | tr -d "\\n")"',
  'printf "botocore %s\\n" "$(python3 /usr/local/bin/botocore-creds 2>&1 | tail -n 1)"',
  'printf "goimds %s\\n" "$(goimds 2>&1 | tail -n 1)"',
  'echo done; exec sleep infinity',
].join('\n');

/**
 * curl as the simplest client, every `interval` seconds: IMDSv2 token, role listing, credentials.
 * One line per attempt: `try <epoch-ms> <listing-status> <role> <creds-status> <AccessKeyId>`.
 */
export function curlLoopScript(interval = 0.2): string {
  return `
md=http://169.254.169.254/latest
while :; do
  t=$(date +%s%3N)
  tok=$(curl -s -m 1 -X PUT -H 'x-aws-ec2-metadata-token-ttl-seconds: 60' $md/api/token)
  l=$(curl -s -m 1 -o /tmp/l -w '%{http_code}' -H "x-aws-ec2-metadata-token: $tok" $md/meta-data/iam/security-credentials/)
  role=$(head -c 200 /tmp/l 2>/dev/null | tr -d ' \\n'); c=000; key=-
  if [ "$l" = 200 ]; then
    c=$(curl -s -m 1 -o /tmp/c -w '%{http_code}' -H "x-aws-ec2-metadata-token: $tok" "$md/meta-data/iam/security-credentials/$role")
    key=$(sed -n 's/.*"AccessKeyId" *: *"\\([^"]*\\)".*/\\1/p' /tmp/c | head -n 1)
  fi
  echo "try $t $l \${role:--} $c \${key:--}"
  rm -f /tmp/l /tmp/c
  sleep ${interval}
done`;
}

export interface Try {
  at: number;
  listing: string;
  role: string;
  creds: string;
  key: string;
}

export function parseTries(lines: string[]): Try[] {
  return lines
    .map((l) => /^try (\d+) (\d{3}) (\S+) (\d{3}) (\S+)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ at: Number(m[1]), listing: m[2]!, role: m[3]!, creds: m[4]!, key: m[5]! }));
}

interface Creds {
  accessKeyId?: string;
  AccessKeyId?: string;
  secretAccessKey?: string;
  SecretAccessKey?: string;
  sessionToken?: string;
  SessionToken?: string;
}

/** The role ARN behind a client's printed credentials (moto's GetCallerIdentity), or the failure. */
export async function callerArn(line: string | undefined): Promise<string> {
  const json = line?.slice(line.indexOf(' ') + 1) ?? '';
  let c: Creds;
  try {
    c = JSON.parse(json) as Creds;
  } catch {
    return `no credentials: ${json.slice(0, 300)}`;
  }
  const sts = new STSClient({
    region: 'us-east-1',
    endpoint: testEnv().sts.endpoint,
    credentials: {
      accessKeyId: c.accessKeyId ?? c.AccessKeyId ?? '',
      secretAccessKey: c.secretAccessKey ?? c.SecretAccessKey ?? '',
      sessionToken: c.sessionToken ?? c.SessionToken,
    },
  });
  const r = await sts.send(new GetCallerIdentityCommand({}));
  // arn:aws:sts::123456789012:assumed-role/NAME/session → the role's ARN
  return (r.Arn ?? '').replace(/:sts::(\d+):assumed-role\/([^/]+)\/.*$/, ':iam::$1:role/$2');
}

export { STS_URL };

/**
 * A pod that asks for its role's credentials continuously (curlLoopScript), in a fresh namespace whose
 * service account `app` has `role`; resolves once the pod has been served that role.
 */
export async function askingPod(namespace: string, name: string, role: string): Promise<void> {
  await freshNamespace(namespace);
  await apply({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: 'app', namespace, annotations: { 'eks.amazonaws.com/role-arn': roleArn(role) } },
  });
  await apply(clientPod({ namespace, name, serviceAccount: 'app', script: curlLoopScript(0.2) }));
  await until(`${namespace}/${name} served`, 60_000, async () =>
    parseTries(podLog(namespace, name)).some((t) => t.role === role && t.creds === '200') ? true : undefined,
  );
}
