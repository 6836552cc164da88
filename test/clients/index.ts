// The real AWS clients of the test environment, each asked for instance-metadata credentials.
import * as awscli from './awscli.js';
import * as botocore from './botocore.js';
import * as goimds from './goimds.js';
import * as js from './js.js';
import type { ClientName, ClientOptions, ImdsCredentials } from './run.js';

export { ClientError, cleanEnv, type ClientName, type ClientOptions, type ImdsCredentials } from './run.js';
export { getMetadata } from './goimds.js';

export const CLIENTS: Record<ClientName, (o: ClientOptions) => Promise<ImdsCredentials>> = {
  botocore: botocore.getCredentials,
  awscli: awscli.getCredentials,
  js: js.getCredentials,
  goimds: goimds.getCredentials,
};
