// AWS SDK for JavaScript v3: fromInstanceMetadata from @aws-sdk/credential-providers, the provider an
// SDK client on EC2 ends its default chain with. Prints one JSON line; errors go to stderr, exit 1.
import { fromInstanceMetadata } from '@aws-sdk/credential-providers';

try {
  const c = await fromInstanceMetadata({ timeout: 3000, maxRetries: 1 })();
  console.log(
    JSON.stringify({
      accessKeyId: c.accessKeyId,
      secretAccessKey: c.secretAccessKey,
      sessionToken: c.sessionToken,
      expiration: c.expiration?.toISOString(),
    }),
  );
} catch (err) {
  console.error(`error: ${err.name}: ${err.message}`);
  process.exit(1);
}
