// Kubeconfig exec plugins (`users[].user.exec`, as `aws eks get-token` writes them): run the command, read
// the ExecCredential it prints, use status.token until status.expirationTimestamp.
// https://kubernetes.io/docs/reference/access-authn-authz/authentication/#client-go-credential-plugins
//
// The token provider the REST client reads is synchronous (kubeconfig.ts TokenProvider), so the first
// token is fetched when the kubeconfig is loaded (a CLI start-up, `imdsgate explain`), and later ones in
// the background ahead of expiry; a 401 also starts a fetch. A request never waits for the plugin.
import { execa, execaSync } from 'execa';
import { isAbsolute, resolve } from 'node:path';

export class ExecCredentialError extends Error {
  override readonly name = 'ExecCredentialError';
}

export interface ExecConfig {
  readonly apiVersion: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

interface Credential {
  readonly token: string;
  /** ms since the epoch; undefined: valid until a 401 says otherwise. */
  readonly expiresAt: number | undefined;
}

const TIMEOUT_MS = 30_000;
/** Refresh this long before expiry (`aws eks get-token` tokens live 15 min, expire at 14). */
const MARGIN_MS = 60_000;

/** `users[].user.exec` → ExecConfig; relative commands with a slash are relative to the kubeconfig. */
export function parseExec(exec: Record<string, unknown>, base: string, file: string): ExecConfig {
  const command = exec.command;
  const apiVersion = exec.apiVersion;
  if (typeof command !== 'string' || command === '')
    throw new ExecCredentialError(`${file}: exec.command is required`);
  if (typeof apiVersion !== 'string' || !apiVersion.startsWith('client.authentication.k8s.io/'))
    throw new ExecCredentialError(
      `${file}: exec.apiVersion must be client.authentication.k8s.io/v1 or v1beta1`,
    );
  const args = Array.isArray(exec.args) ? exec.args.map(String) : [];
  const env: Record<string, string> = {};
  if (Array.isArray(exec.env))
    for (const e of exec.env as { name?: unknown; value?: unknown }[])
      if (typeof e?.name === 'string') env[e.name] = String(e.value ?? '');
  const resolved = command.includes('/') && !isAbsolute(command) ? resolve(base, command) : command;
  return { apiVersion, command: resolved, args, env };
}

/** ExecCredential JSON → credential; the problem in the thrown error's message. */
export function parseExecCredential(stdout: string, want: string): Credential {
  let doc: { apiVersion?: unknown; kind?: unknown; status?: Record<string, unknown> };
  try {
    doc = JSON.parse(stdout) as typeof doc;
  } catch {
    throw new ExecCredentialError('exec plugin did not print JSON');
  }
  if (doc.kind !== 'ExecCredential')
    throw new ExecCredentialError('exec plugin output is not an ExecCredential');
  if (doc.apiVersion !== want)
    throw new ExecCredentialError(
      `exec plugin answered ${String(doc.apiVersion)}, the kubeconfig asked for ${want}`,
    );
  const token = doc.status?.token;
  if (typeof token !== 'string' || token === '')
    throw new ExecCredentialError('exec plugin gave no status.token (client certificates are not supported)');
  const exp = doc.status?.expirationTimestamp;
  const expiresAt = typeof exp === 'string' ? Date.parse(exp) : undefined;
  if (expiresAt !== undefined && Number.isNaN(expiresAt))
    throw new ExecCredentialError(`exec plugin gave an invalid expirationTimestamp "${String(exp)}"`);
  return { token, expiresAt };
}

/** KUBERNETES_EXEC_INFO, as client-go sets it: never interactive. */
const execInfo = (c: ExecConfig) =>
  JSON.stringify({ apiVersion: c.apiVersion, kind: 'ExecCredential', spec: { interactive: false } });

const options = (c: ExecConfig) => ({
  env: { ...c.env, KUBERNETES_EXEC_INFO: execInfo(c) },
  timeout: TIMEOUT_MS,
  stdin: 'ignore' as const,
  stderr: 'pipe' as const,
});

function failure(c: ExecConfig, err: unknown): ExecCredentialError {
  const e = err as { shortMessage?: string; stderr?: unknown; message?: string };
  const stderr = typeof e.stderr === 'string' && e.stderr !== '' ? `: ${e.stderr.trim().slice(0, 300)}` : '';
  return new ExecCredentialError(`exec plugin ${c.command} failed: ${e.shortMessage ?? e.message}${stderr}`, {
    cause: err,
  });
}

/** The shape of kubeconfig.ts's TokenProvider (not imported: kubeconfig.ts imports this module). */
export interface ExecTokenProvider {
  get(): string;
  refresh(): boolean;
}

export function execToken(c: ExecConfig, now: () => number = Date.now): ExecTokenProvider {
  const fetchSync = (): Credential => {
    let out: string;
    try {
      out = String(execaSync(c.command, c.args, options(c)).stdout);
    } catch (err) {
      throw failure(c, err);
    }
    return parseExecCredential(out, c.apiVersion);
  };
  let current = fetchSync();
  let pending: Promise<void> | undefined;
  const fetchAsync = () => {
    pending ??= execa(c.command, c.args, options(c))
      .then((r) => {
        current = parseExecCredential(String(r.stdout), c.apiVersion);
      })
      .catch(() => undefined) // keep the last token; the next request or 401 tries again
      .finally(() => (pending = undefined));
  };
  return {
    get() {
      if (current.expiresAt !== undefined && now() >= current.expiresAt - MARGIN_MS) fetchAsync();
      return current.token;
    },
    refresh() {
      fetchAsync();
      return false;
    },
  };
}
