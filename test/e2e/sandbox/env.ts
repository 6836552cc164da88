// What the sandbox needs from the real test environment (test/env, `npm run testenv:up`): the
// kube-apiserver and moto URLs on 127.0.0.1, the admin kubeconfig and the AEMM binary. Read from the state
// file that test/env/up writes, the same file test/env/index.ts reads.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface SandboxEnv {
  readonly kube: { readonly server: string; readonly adminKubeconfig: string };
  readonly sts: { readonly endpoint: string };
  readonly bins: { readonly aemm: string };
  readonly python: string;
  readonly awsCli: string;
  readonly goimds: string;
}

export function sandboxEnv(): SandboxEnv {
  const cache = process.env.IMDSGATE_TESTENV_CACHE ?? join(homedir(), '.cache', 'imdsgate-testenv');
  const file = join(cache, 'state.json');
  let state: {
    kube: SandboxEnv['kube'];
    sts: SandboxEnv['sts'];
    bins: { aemm: string; goimds: string };
    python: string;
    awsCli: string;
  };
  try {
    state = JSON.parse(readFileSync(file, 'utf8')) as typeof state;
  } catch (err) {
    throw new Error(
      `test environment is not up (${file}: ${(err as Error).message}); run \`npm run testenv:up\``,
    );
  }
  return {
    kube: state.kube,
    sts: state.sts,
    bins: { aemm: state.bins.aemm },
    python: state.python,
    awsCli: state.awsCli,
    goimds: state.bins.goimds,
  };
}
