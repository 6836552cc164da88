// Continuous pod churn on the real node (test/node/7-churn.test.ts, bench/node/churn.sh): pods with
// different roles are created and deleted one after another while host-local hands a narrowed range of
// addresses round and round, so nearly every new sandbox gets an address that a pod with another role
// held moments before. Every pod asks for credentials from the first instant of its container and prints
// each answer; every AccessKeyId is traced to its role with STS GetCallerIdentity (moto).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { apply, kubectl, podLog } from './bed.js';
import { callerArn, clientPod } from './pods.js';

export interface ChurnRole {
  namespace: string;
  serviceAccount: string;
  role: string;
}

export interface ChurnOptions {
  roles: readonly ChurnRole[];
  /** Pods kept running at once (fewer than the addresses in the range, so a new sandbox finds one). */
  alive: number;
  /** Stop creating pods once this many addresses went from one role to another... */
  reuses: number;
  /** ...or after this many pods, or this long. */
  maxPods: number;
  maxMs: number;
  /**
   * How a pod leaves: `delete` (through the API, grace 1 s), or `crash`: its sandbox's pause process is
   * killed, as a runtime crash or OOM would, and the pod deleted 4 s later. The kubelet then gives the pod a
   * new sandbox and address while the API view still names it on the old one: the window that only a
   * per-pod signal (host route or host-local lease) closes (docs/identity.md).
   */
  retire: 'delete' | 'crash';
  /** host-local's reservations (one file per address held), as seen from the machine. */
  ipamDir: string;
}

export interface ChurnPod {
  name: string;
  spec: ChurnRole;
  uid?: string;
  ip?: string;
  /** Role of the address's previous pod (undefined: first use in this run). */
  previous?: string;
  /** Every address the pod held, in order (a crashed sandbox's pod gets a new one). */
  ips: string[];
  crashed?: number;
  deleted?: number;
  lines: string[];
}

/**
 * From the container's first instant: `start <ms>`; then token PUT, role listing, credentials, about every
 * 50 ms for 40 tries and every second after that, one `try <sent-ms> <done-ms> <listing> <role> <creds>
 * <AccessKeyId>` line each, and `creds <json>` the first time a key is seen. SIGTERM ends it at once, so
 * the sandbox (and its address) goes as soon as the kubelet stops it.
 */
export const CHURN_SCRIPT = `echo "start $(date +%s%3N)"
trap 'exit 0' TERM
md=http://169.254.169.254/latest; n=0; seen=
while :; do
  t=$(date +%s%3N)
  tok=$(curl -s -m 1 -X PUT -H 'x-aws-ec2-metadata-token-ttl-seconds: 60' $md/api/token)
  l=$(curl -s -m 1 -o /tmp/l -w '%{http_code}' -H "x-aws-ec2-metadata-token: $tok" $md/meta-data/iam/security-credentials/)
  role=$(head -c 200 /tmp/l 2>/dev/null | tr -d ' \\n'); c=000; key=-
  if [ "$l" = 200 ]; then
    c=$(curl -s -m 1 -o /tmp/c -w '%{http_code}' -H "x-aws-ec2-metadata-token: $tok" "$md/meta-data/iam/security-credentials/$role")
    key=$(sed -n 's/.*"AccessKeyId" *: *"\\([^"]*\\)".*/\\1/p' /tmp/c | head -n 1)
    case "$c $seen " in 200*" $key "*|[!2]*) ;; *) seen="$seen $key"; echo "creds $(tr -d '\\n' </tmp/c)" ;; esac
  fi
  echo "try $t $(date +%s%3N) $l \${role:--} $c \${key:--}"
  rm -f /tmp/l /tmp/c; n=$((n + 1))
  if [ $n -lt 40 ]; then sleep 0.05; else sleep 1; fi
done`;

export interface ChurnTry {
  sent: number;
  done: number;
  listing: string;
  role: string;
  creds: string;
  key: string;
}

export function parseChurnLog(lines: readonly string[]): { start?: number; tries: ChurnTry[] } {
  const start = lines.map((l) => /^start (\d+)$/.exec(l)).find((m) => m !== null)?.[1];
  const tries = lines
    .map((l) => /^try (\d+) (\d+) (\d{3}) (\S+) (\d{3}) (\S+)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({
      sent: Number(m[1]),
      done: Number(m[2]),
      listing: m[3]!,
      role: m[4]!,
      creds: m[5]!,
      key: m[6]!,
    }));
  return { ...(start === undefined ? {} : { start: Number(start) }), tries };
}

interface Listed {
  uid: string;
  ip?: string;
}

async function listPods(label: string): Promise<Map<string, Listed>> {
  const out = await kubectl(['get', 'pods', '-A', '-l', label, '-o', 'json']);
  const items = (
    JSON.parse(out) as { items: { metadata: { name: string; uid: string }; status: { podIP?: string } }[] }
  ).items;
  return new Map(items.map((p) => [p.metadata.name, { uid: p.metadata.uid, ip: p.status.podIP }]));
}

/** Kills a pod's pause process (its sandbox), found in the kubelet's pod cgroup (cgroupfs driver, v1). */
function crashSandbox(uid: string): boolean {
  let killed = false;
  const root = '/sys/fs/cgroup/pids/kubepods';
  for (const qos of ['', 'besteffort/', 'burstable/']) {
    const dir = `${root}/${qos}pod${uid}`;
    if (!existsSync(dir)) continue;
    for (const c of readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory())) {
      for (const pid of readFileSync(`${dir}/${c.name}/cgroup.procs`, 'utf8').split('\n').filter(Boolean)) {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] !== '/pause') continue;
        process.kill(Number(pid), 'SIGKILL');
        killed = true;
      }
    }
  }
  return killed;
}

/**
 * Runs the churn; returns every pod with its addresses, the previous role of its first address and its
 * log, and how many times an address went to a pod of another role (crashed pods' new sandboxes included).
 */
export async function churn(
  o: ChurnOptions,
  runId: string,
): Promise<{ pods: ChurnPod[]; crossRoleReuses: number }> {
  const label = `imdsgate-churn=${runId}`;
  const pods: ChurnPod[] = [];
  const owners = new Map<string, string>();
  let reuses = 0;
  const t0 = Date.now();
  const more = () => reuses < o.reuses && pods.length < o.maxPods && Date.now() - t0 < o.maxMs;
  const remove = async (p: ChurnPod) => {
    p.lines = podLog(p.spec.namespace, p.name);
    p.deleted = Date.now();
    await kubectl(['delete', 'pod', '-n', p.spec.namespace, p.name, '--grace-period=1', '--wait=false']);
  };
  // A crashed sandbox's address is handed on as soon as host-local has released it: the next pod is
  // created then, while the kubelet gives the crashed pod a new sandbox and before it reports the new IP.
  const retire = async (p: ChurnPod) => {
    if (o.retire !== 'crash' || p.uid === undefined || !crashSandbox(p.uid)) return remove(p);
    p.crashed = Date.now();
    const held = join(o.ipamDir, p.ip ?? '');
    for (let i = 0; i < 250 && existsSync(held); i++) await sleep(20);
  };
  for (;;) {
    const listed = await listPods(label);
    for (const p of pods) {
      const l = listed.get(p.name);
      if (l === undefined || p.deleted !== undefined) continue;
      p.uid = l.uid;
      if (l.ip === undefined || l.ip === p.ips.at(-1)) continue;
      // The address changed hands: from its last owner (if any) to this pod.
      const prev = owners.get(l.ip);
      if (p.ip === undefined && prev !== undefined) p.previous = prev;
      if (prev !== undefined && prev !== p.spec.role) reuses++;
      p.ip ??= l.ip;
      p.ips.push(l.ip);
      owners.set(l.ip, p.spec.role);
    }
    for (const p of pods.filter(
      (x) => x.deleted === undefined && (x.crashed ?? Infinity) < Date.now() - 4000,
    ))
      await remove(p);
    const pending = pods.filter((p) => p.deleted === undefined && p.ip === undefined);
    if (pending.length === 0 && !more()) break;
    if (pending.length === 0) {
      const live = pods.filter(
        (p) => p.deleted === undefined && p.crashed === undefined && p.ip !== undefined,
      );
      for (const p of live.slice(0, Math.max(0, live.length + 1 - o.alive))) await retire(p);
      const spec = o.roles[pods.length % o.roles.length]!;
      const p: ChurnPod = { name: `c${pods.length}`, spec, ips: [], lines: [] };
      pods.push(p);
      const pod = clientPod({
        namespace: spec.namespace,
        name: p.name,
        serviceAccount: spec.serviceAccount,
        script: CHURN_SCRIPT,
      }) as { metadata: { labels?: Record<string, string> } };
      pod.metadata.labels = { 'imdsgate-churn': runId };
      await apply(pod);
    }
    await sleep(150);
  }
  for (const p of pods.filter((x) => x.deleted === undefined)) await remove(p);
  // A retired pod's log may have grown after it was read (its last tries): read again where it remains.
  for (const p of pods) {
    const again = podLog(p.spec.namespace, p.name);
    if (again.length > p.lines.length) p.lines = again;
  }
  return { pods, crossRoleReuses: reuses };
}

/** AccessKeyId → role name, from each pod's `creds` lines, through STS GetCallerIdentity. */
export async function keyRoles(pods: readonly ChurnPod[]): Promise<Map<string, string>> {
  const byKey = new Map<string, string>();
  for (const p of pods) {
    for (const l of p.lines.filter((x) => x.startsWith('creds '))) {
      const key = /"AccessKeyId"\s*:\s*"([^"]+)"/.exec(l)?.[1];
      if (key === undefined || byKey.has(key)) continue;
      byKey.set(key, (await callerArn(l)).replace(/^.*:role\//, ''));
    }
  }
  return byKey;
}
