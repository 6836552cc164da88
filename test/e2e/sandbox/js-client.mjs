// Runs inside a pod network namespace: the AWS SDK for JavaScript v3 instance-metadata provider, with
// its defaults (IMDSv2 first, 169.254.169.254), prints the credentials it got as JSON (no secret values).
import { fromInstanceMetadata } from '@aws-sdk/credential-providers';

try {
  const c = await fromInstanceMetadata({ timeout: 2000, maxRetries: 1 })();
  process.stdout.write(`${JSON.stringify({ accessKeyId: c.accessKeyId, expiration: c.expiration })}\n`);
} catch (err) {
  process.stdout.write(`${JSON.stringify({ error: String(err?.message ?? err) })}\n`);
  process.exitCode = 1;
}
