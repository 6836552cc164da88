// IMDS response bodies the agent writes itself: credential JSON (UG-iam, docs/protocol.md §5.3), the
// `-extended` variant with AccountId (§5.4), iam/info (§5.1) and listings. IMDS pretty-prints JSON with
// two spaces and `"Key" : "value"`; clients parse it as JSON, the spelling only keeps `curl` output
// familiar. Content type is text/plain, as IMDS sends it (§2, §13 #37).
import { createHash } from 'node:crypto';
import type { Credentials } from '../credentials/types.js';

export const TEXT_PLAIN = 'text/plain';

/** UTC `YYYY-MM-DDTHH:MM:SSZ`, fraction dropped (rounded down, so an expiry is never moved later). */
export function imdsTime(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** `{\n  "Key" : "value",\n ...\n}`, string values only, in the given key order. */
export function imdsJson(fields: ReadonlyArray<readonly [string, string]>): string {
  const lines = fields.map(([k, v]) => `  ${JSON.stringify(k)} : ${JSON.stringify(v)}`);
  return `{\n${lines.join(',\n')}\n}`;
}

export function credentialsBody(c: Credentials, opts: { accountId?: string } = {}): string {
  const fields: [string, string][] = [
    ['Code', 'Success'],
    ['LastUpdated', imdsTime(c.lastUpdated)],
    ['Type', 'AWS-HMAC'],
    ['AccessKeyId', c.accessKeyId],
    ['SecretAccessKey', c.secretAccessKey],
    ['Token', c.sessionToken],
    ['Expiration', imdsTime(c.expiration)],
  ];
  if (opts.accountId !== undefined) fields.push(['AccountId', opts.accountId]);
  return imdsJson(fields);
}

/** The account of `arn:aws:iam::123456789012:role/x`, or undefined. */
export function accountOf(roleArn: string): string | undefined {
  return /^arn:[^:]+:iam::(\d{12}):/.exec(roleArn)?.[1];
}

/**
 * iam/info for the pod's role. It must never name the node's instance profile (§13 #34), so it names a
 * synthesized profile after the pod's role, with a stable id derived from the role ARN. Tools that read
 * the ARN (kube2iam's --auto-discover-base-arn style) get the pod role's account and name.
 */
export function iamInfoBody(roleArn: string, now: Date): string {
  const partition = /^arn:([^:]+):/.exec(roleArn)?.[1] ?? 'aws';
  const account = accountOf(roleArn) ?? '000000000000';
  const name = roleArn.slice(roleArn.lastIndexOf('/') + 1);
  const digest = createHash('sha256').update(roleArn).digest('hex').toUpperCase();
  const id = `AIPA${digest.replace(/[^A-Z0-9]/g, '').slice(0, 17)}`;
  return imdsJson([
    ['Code', 'Success'],
    ['LastUpdated', imdsTime(now)],
    ['InstanceProfileArn', `arn:${partition}:iam::${account}:instance-profile/${name}`],
    ['InstanceProfileId', id],
  ]);
}
