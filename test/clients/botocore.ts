// botocore (the engine of boto3 and AWS CLI v1) from the test environment's venv.
import { join } from 'node:path';
import { testEnv } from '../env/index.js';
import { CLIENTS_DIR, jsonCredentials, runClient, type ClientOptions, type ImdsCredentials } from './run.js';

export function getCredentials(o: ClientOptions): Promise<ImdsCredentials> {
  // botocore's IMDS timeout is 1s with 1 attempt by default; tests on a busy 2-core box need slack.
  const env = { AWS_METADATA_SERVICE_TIMEOUT: '3', AWS_METADATA_SERVICE_NUM_ATTEMPTS: '2', ...o.env };
  return runClient(
    'botocore',
    testEnv().python,
    [join(CLIENTS_DIR, 'botocore_creds.py')],
    { ...o, env },
    jsonCredentials,
  );
}
