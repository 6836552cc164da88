// The file-based identity map: pod IP → namespace, name, service account and role, from a YAML file.
// It stands in for the Kubernetes watch in the demo and the front-door tests (issue 3), and implements the
// same three interfaces. The file is re-read when it changes (fs.watch on its directory, so an atomic
// rename is seen, plus a periodic stat for filesystems where watch is silent). A file that does not parse
// keeps the last good map and logs an error; the first load must succeed.
//
//   pods:
//     - { ip: 10.0.0.5, namespace: team-a, name: web-0, serviceAccount: web, roleArn: arn:aws:iam::…:role/web }
//     - { ip: 10.0.0.6, namespace: team-a, name: batch-0, serviceAccount: batch }   # no role
//   namespaces:
//     team-a: { imdsv1: deny }
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { ipFamily, normalizeIp } from '../ip.js';
import * as v from 'valibot';
import { parseYaml } from '../yaml.js';
import { roleArnSchema } from '../config.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Imdsv1Policy, RoleDecision, RoleResolver } from '../roles/types.js';
import type { PodIdentity, PodLookup, PodLookupResult } from './types.js';

const nonEmpty = v.pipe(v.string(), v.minLength(1, 'must not be empty'));
const fileSchema = v.object({
  pods: v.optional(
    v.array(
      v.strictObject(
        {
          ip: v.pipe(
            v.string(),
            v.check((s) => ipFamily(s) !== undefined, 'must be an IP address'),
          ),
          namespace: nonEmpty,
          name: nonEmpty,
          serviceAccount: nonEmpty,
          roleArn: v.optional(roleArnSchema),
        },
        'must be a mapping of only ip, namespace, name, serviceAccount and roleArn',
      ),
    ),
    [],
  ),
  namespaces: v.optional(
    v.record(
      v.string(),
      v.strictObject(
        { imdsv1: v.optional(v.picklist(['allow', 'deny'], 'must be allow or deny')) },
        'must be a mapping of only imdsv1',
      ),
    ),
    {},
  ),
});

type IdentityFile = v.InferOutput<typeof fileSchema>;

interface View {
  readonly byIp: ReadonlyMap<string, { pod: PodIdentity; roleArn?: string } | 'conflict'>;
  readonly namespaces: IdentityFile['namespaces'];
}

export interface FileIdentity {
  readonly podLookup: PodLookup;
  readonly roleResolver: RoleResolver;
  readonly imdsv1Policy: Imdsv1Policy;
  /** Re-reads the file now; resolves false (and keeps the last good map) when it is invalid. */
  reload(): Promise<boolean>;
  stop(): void;
}

export interface FileIdentityOptions {
  readonly path: string;
  readonly imdsv1: 'allow' | 'deny';
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** Stat fallback period; 0 disables it. */
  readonly pollMs?: number;
}

/** Loads the file (throwing a readable error when the first load is invalid) and starts watching it. */
export async function startFileIdentity(opts: FileIdentityOptions): Promise<FileIdentity> {
  let view = toView(await load(opts.path));
  publish(view, opts.metrics);
  let lastStamp = await stamp(opts.path);

  async function reload(): Promise<boolean> {
    try {
      view = toView(await load(opts.path));
      publish(view, opts.metrics);
      opts.logger.info({ file: opts.path, entries: view.byIp.size }, 'identity file reloaded');
      return true;
    } catch (err) {
      opts.logger.error(
        { file: opts.path, err: (err as Error).message },
        'identity file invalid; keeping the last good map',
      );
      return false;
    }
  }
  async function checkChanged(): Promise<void> {
    const s = await stamp(opts.path);
    if (s === lastStamp) return;
    lastStamp = s;
    await reload();
  }

  const watcher = watchDir(opts.path, () => void checkChanged(), opts.logger);
  const timer =
    (opts.pollMs ?? 1000) > 0 ? setInterval(() => void checkChanged(), opts.pollMs ?? 1000) : undefined;
  timer?.unref();

  return {
    podLookup: {
      byIp: async (ip) => lookup(view, ip),
      isReady: () => true,
    },
    roleResolver: { resolve: (pod) => resolve(view, pod) },
    imdsv1Policy: { forPod: (pod) => view.namespaces[pod.namespace]?.imdsv1 ?? opts.imdsv1 },
    reload,
    stop() {
      watcher?.close();
      if (timer) clearInterval(timer);
    },
  };
}

async function load(path: string): Promise<IdentityFile> {
  const text = await readFile(path, 'utf8');
  const parsed = v.safeParse(fileSchema, parseYaml(text, path) ?? {}, { abortPipeEarly: true });
  if (!parsed.success) {
    const problems = parsed.issues.map((i) => `${v.getDotPath(i) ?? '(file)'}: ${i.message}`);
    throw new Error(`identity file ${path} is invalid: ${problems.join('; ')}`);
  }
  return parsed.output;
}

function toView(file: IdentityFile): View {
  const byIp = new Map<string, { pod: PodIdentity; roleArn?: string } | 'conflict'>();
  for (const p of file.pods) {
    const pod: PodIdentity = {
      ip: p.ip,
      namespace: p.namespace,
      name: p.name,
      uid: '',
      serviceAccount: p.serviceAccount,
      annotations: {},
    };
    // Two entries for one IP: nobody gets an identity (as two live pods claiming an IP in the watch).
    byIp.set(p.ip, byIp.has(p.ip) ? 'conflict' : { pod, ...(p.roleArn ? { roleArn: p.roleArn } : {}) });
  }
  return { byIp, namespaces: file.namespaces };
}

function lookup(view: View, ip: string): PodLookupResult {
  const e = view.byIp.get(normalizeIp(ip));
  if (e === undefined) return { kind: 'unknown' };
  return e === 'conflict' ? { kind: 'conflict' } : { kind: 'found', pod: e.pod };
}

function resolve(view: View, pod: PodIdentity): RoleDecision {
  const e = view.byIp.get(pod.ip);
  // The pod must still be the one in the map (the file may have changed since the lookup).
  if (e === undefined || e === 'conflict' || e.pod.namespace !== pod.namespace || e.pod.name !== pod.name) {
    return { allow: false, reason: 'pod_unknown', detail: 'pod no longer in the identity file' };
  }
  if (e.roleArn === undefined)
    return { allow: false, reason: 'no_role', detail: 'no roleArn in the identity file' };
  return {
    allow: true,
    roleArn: e.roleArn,
    roleName: e.roleArn.slice(e.roleArn.lastIndexOf('/') + 1),
    source: 'identity-file',
  };
}

export { normalizeIp };

function publish(view: View, metrics?: Metrics): void {
  metrics?.podsKnown.set(view.byIp.size);
  metrics?.podViewLastSync.set(Date.now() / 1000);
}

async function stamp(path: string): Promise<string> {
  try {
    const s = await stat(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

function watchDir(path: string, onChange: () => void, logger: Logger): FSWatcher | undefined {
  try {
    const name = basename(path);
    const w = watch(dirname(path), (_event, file) => {
      if (file === null || file === name) onChange();
    });
    w.on('error', (err) => logger.warn({ err }, 'identity file watch failed; relying on polling'));
    w.unref();
    return w;
  } catch (err) {
    logger.warn({ err }, 'cannot watch the identity file; relying on polling');
    return undefined;
  }
}
