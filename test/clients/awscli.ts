// AWS CLI v2 (Debian's awscli package): `aws configure export-credentials` runs the CLI's own credential
// chain, which with nothing configured ends at the instance-metadata provider.
import { testEnv } from '../env/index.js';
import { ClientError, runClient, toCredentials, type ClientOptions, type ImdsCredentials } from './run.js';

export function getCredentials(o: ClientOptions): Promise<ImdsCredentials> {
  const aws = testEnv().awsCliV2;
  if (!aws) throw new ClientError('awscli', 'AWS CLI v2 not installed (apt-get install awscli)', '');
  // CLI v2.9's bundled botocore joins endpoint + 'latest/api/token' without a slash: give it one.
  const endpoint = o.endpoint.endsWith('/') ? o.endpoint : `${o.endpoint}/`;
  const env = {
    AWS_METADATA_SERVICE_TIMEOUT: '3',
    AWS_METADATA_SERVICE_NUM_ATTEMPTS: '2',
    ...o.env,
    AWS_EC2_METADATA_SERVICE_ENDPOINT: endpoint,
  };
  return runClient(
    'awscli',
    aws,
    ['configure', 'export-credentials', '--format', 'process'],
    { ...o, env },
    (out) => {
      const j = JSON.parse(out) as Record<string, unknown>;
      return toCredentials({
        accessKeyId: j.AccessKeyId,
        secretAccessKey: j.SecretAccessKey,
        sessionToken: j.SessionToken,
        expiration: j.Expiration,
      });
    },
  );
}
