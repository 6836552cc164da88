// Credentials flow from an issuer (STS AssumeRole or AssumeRoleWithWebIdentity) through a refreshing
// cache that implements the same interface.
import type { PodIdentity } from '../pods/types.js';

export interface Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  readonly expiration: Date;
  readonly lastUpdated: Date;
  readonly accountId?: string;
}

export interface CredentialRequest {
  readonly pod: PodIdentity;
  readonly roleArn: string;
  readonly externalId?: string;
}

export interface CredentialIssuer {
  /** Rejects with ImdsError('CREDENTIALS_UNAVAILABLE') when no valid credentials can be had. */
  issue(req: CredentialRequest): Promise<Credentials>;
  /**
   * Everything that shapes the STS session for this request (role, session name, external ID, tags),
   * as one string. The cache keys on it; issuers that leave it out get a key of role + external ID + pod.
   */
  keyFor?(req: CredentialRequest): string;
}
