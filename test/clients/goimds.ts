// aws-sdk-go-v2 (feature/ec2/imds + credentials/ec2rolecreds), built by test/env/build-go-tools.sh.
import { execa } from 'execa';
import { testEnv } from '../env/index.js';
import { cleanEnv, jsonCredentials, runClient, type ClientOptions, type ImdsCredentials } from './run.js';

export function getCredentials(o: ClientOptions): Promise<ImdsCredentials> {
  return runClient('goimds', testEnv().bins.goimds, [], o, jsonCredentials);
}

/** GET a path under /latest/meta-data/ through the Go SDK's IMDS client; resolves to the body. */
export async function getMetadata(o: ClientOptions, path: string): Promise<{ ok: boolean; body: string }> {
  const bin = testEnv().bins.goimds;
  const [file, argv] = o.netns
    ? ['ip', ['netns', 'exec', o.netns, bin, '-raw', path]]
    : [bin, ['-raw', path]];
  const r = await execa(file, argv, {
    env: cleanEnv(o, '/nonexistent'),
    extendEnv: false,
    reject: false,
    timeout: o.timeoutMs ?? 30_000,
  });
  return { ok: r.exitCode === 0, body: r.exitCode === 0 ? r.stdout : r.stderr };
}
