// Where the API server is and how to authenticate to it: a kubeconfig file (--kubeconfig: tests,
// `explain` from a workstation) or the pod's own service account (the DaemonSet). Only what the agent
// needs is read: server, CA, client certificate, bearer token, token file or exec plugin (token only,
// exec-credential.ts), insecure-skip-tls-verify. auth-provider plugins (removed from kubectl in 1.26) are
// refused with a clear message instead of being half-supported.
// Kubeconfig semantics follow https://kubernetes.io/docs/reference/config-api/kubeconfig.v1/ (relative
// file paths are relative to the kubeconfig's own directory).
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import { parseYaml } from '../yaml.js';
import { ExecCredentialError, execToken, parseExec } from './exec-credential.js';

export class KubeconfigError extends Error {
  override readonly name = 'KubeconfigError';
}

/** A bearer token that may change over time (bound service-account tokens rotate, ~hourly). */
export interface TokenProvider {
  get(): string;
  /** Re-read now (after a 401); true when the token changed. */
  refresh(): boolean;
}

export interface KubeTarget {
  /** https://host:port, possibly with a path prefix (API servers behind a proxy). */
  readonly server: string;
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly tlsServerName?: string;
  readonly insecureSkipTlsVerify: boolean;
  readonly token?: TokenProvider;
  /** Where the settings came from, for error messages. */
  readonly source: string;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** client-go re-reads a token file at most once a minute (transport/token_source.go); so do we. */
const TOKEN_FILE_REFRESH_MS = 60_000;

/** A token read from a file, cached for refreshMs; a failed re-read keeps the last good token. */
export function fileToken(path: string, refreshMs = TOKEN_FILE_REFRESH_MS, now = Date.now): TokenProvider {
  const read = (): string => {
    const t = readFileSync(path, 'utf8').trim();
    if (t === '') throw new KubeconfigError(`token file ${path} is empty`);
    return t;
  };
  let value: string;
  try {
    value = read();
  } catch (err) {
    throw new KubeconfigError(`cannot read token file ${path}: ${(err as Error).message}`, { cause: err });
  }
  let readAt = now();
  const refresh = (): boolean => {
    readAt = now();
    try {
      const next = read();
      const changed = next !== value;
      value = next;
      return changed;
    } catch {
      return false;
    }
  };
  return {
    get() {
      if (now() - readAt >= refreshMs) refresh();
      return value;
    },
    refresh,
  };
}

const staticToken = (value: string): TokenProvider => ({ get: () => value, refresh: () => false });

/** In-cluster: KUBERNETES_SERVICE_HOST/PORT and the mounted service-account token and CA. */
export function fromCluster(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT_DIR): KubeTarget {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new KubeconfigError(
      'not running in a cluster (KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT unset): pass --kubeconfig',
    );
  }
  const caFile = `${dir}/ca.crt`;
  return {
    server: `https://${isIP(host) === 6 ? `[${host}]` : host}:${port}`,
    ca: readOrFail(caFile, 'service-account CA'),
    insecureSkipTlsVerify: false,
    token: fileToken(`${dir}/token`),
    source: 'in-cluster service account',
  };
}

function readOrFail(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new KubeconfigError(`cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
}

type Entry = Record<string, unknown>;

function named(list: unknown, name: string, kind: string, file: string): Entry {
  const found = Array.isArray(list)
    ? (list as Entry[]).find((e) => typeof e === 'object' && e !== null && e.name === name)
    : undefined;
  const body = found?.[kind];
  if (typeof body !== 'object' || body === null) {
    throw new KubeconfigError(`${file}: ${kind} "${name}" not found`);
  }
  return body as Entry;
}

const str = (e: Entry, k: string): string | undefined =>
  typeof e[k] === 'string' && e[k] !== '' ? e[k] : undefined;

/** `<field>-data` (base64) wins over `<field>` (a path relative to the kubeconfig). */
function material(e: Entry, field: string, base: string, file: string): Buffer | undefined {
  const data = str(e, `${field}-data`);
  if (data !== undefined) return Buffer.from(data, 'base64');
  const path = str(e, field);
  return path === undefined ? undefined : readOrFail(resolve(base, path), `${file}: ${field}`);
}

export function parseKubeconfig(text: string, file: string): KubeTarget {
  let doc: unknown;
  try {
    doc = parseYaml(text, file);
  } catch (err) {
    throw new KubeconfigError(`${file}: not valid YAML: ${(err as Error).message}`, { cause: err });
  }
  if (typeof doc !== 'object' || doc === null) throw new KubeconfigError(`${file}: not a kubeconfig`);
  const cfg = doc as Entry;
  const current = str(cfg, 'current-context');
  if (current === undefined) throw new KubeconfigError(`${file}: current-context is not set`);
  const context = named(cfg.contexts, current, 'context', file);
  const cluster = named(cfg.clusters, str(context, 'cluster') ?? '', 'cluster', file);
  const userName = str(context, 'user');
  const user = userName === undefined ? {} : named(cfg.users, userName, 'user', file);
  if (user['auth-provider'] !== undefined) {
    throw new KubeconfigError(
      `${file}: user "${userName}" uses auth-provider, which imdsgate does not support (use an exec plugin)`,
    );
  }
  const server = str(cluster, 'server');
  if (server === undefined || !/^https?:\/\//.test(server)) {
    throw new KubeconfigError(`${file}: cluster server must be an http(s) URL, got ${String(server)}`);
  }
  const base = dirname(resolve(file));
  const exec = user.exec as Entry | undefined;
  const token = str(user, 'token');
  const tokenFile = str(user, 'tokenFile');
  const cert = material(user, 'client-certificate', base, file);
  const key = material(user, 'client-key', base, file);
  if ((cert === undefined) !== (key === undefined)) {
    throw new KubeconfigError(`${file}: user "${userName}" needs both client-certificate and client-key`);
  }
  const ca = material(cluster, 'certificate-authority', base, file);
  const tlsServerName = str(cluster, 'tls-server-name');
  return {
    server: server.replace(/\/+$/, ''),
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined && key !== undefined ? { cert, key } : {}),
    ...(tlsServerName !== undefined ? { tlsServerName } : {}),
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
    ...(token !== undefined
      ? { token: staticToken(token) }
      : tokenFile !== undefined
        ? { token: fileToken(resolve(base, tokenFile)) }
        : exec !== undefined
          ? { token: execTokenFor(exec, base, file) }
          : {}),
    source: file,
  };
}

export function fromKubeconfigFile(file: string): KubeTarget {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new KubeconfigError(`cannot read kubeconfig ${file}: ${(err as Error).message}`, { cause: err });
  }
  return parseKubeconfig(text, file);
}

function execTokenFor(exec: Entry, base: string, file: string): TokenProvider {
  try {
    return execToken(parseExec(exec, base, file));
  } catch (err) {
    if (err instanceof ExecCredentialError) throw new KubeconfigError(err.message, { cause: err });
    throw err;
  }
}
