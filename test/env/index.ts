// The real test environment as tests see it: read from the state file that test/env/up writes.
// Nothing here starts processes; global-setup.ts (vitest) or `npm run testenv:up` does that.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface TestEnv {
  readonly cacheDir: string;
  readonly binDir: string;
  /** Per-run temp dir (etcd data, logs, kubeconfigs); removed by test/env/down. */
  readonly runDir: string;
  readonly pkiDir: string;
  readonly kube: { readonly server: string; readonly adminKubeconfig: string; readonly caFile: string };
  readonly sts: { readonly endpoint: string };
  /** venv python with boto3/botocore. */
  readonly python: string;
  /** AWS CLI v1 from the same venv. */
  readonly awsCli: string;
  /** AWS CLI v2 from Debian (/usr/bin/aws, has `configure export-credentials`); '' if not installed. */
  readonly awsCliV2: string;
  readonly bins: {
    readonly helm: string;
    readonly aemm: string;
    readonly goimds: string;
    readonly kubeApiserver: string;
    readonly etcd: string;
    /** '' when prometheus (promtool) is not installed; .ci/run installs it. */
    readonly promtool: string;
  };
}

export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.IMDSGATE_TESTENV_CACHE ?? join(homedir(), '.cache', 'imdsgate-testenv');
}

export function stateFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheDir(env), 'state.json');
}

/** The running environment; throws a clear error when it is not up. */
export function testEnv(): TestEnv {
  const file = stateFile();
  if (!existsSync(file)) {
    throw new Error(`test environment is not up (${file} missing): run \`npm run testenv:up\``);
  }
  return JSON.parse(readFileSync(file, 'utf8')) as TestEnv;
}

/** Repository root, for scripts that live next to the tests. */
export const REPO_ROOT = new URL('../..', import.meta.url).pathname;
