// The node's own instance-profile credentials, read through the agent's upstream session: the signing
// identity of the assume-role issuer (credentials/sts.ts). They are never served to a pod. They are
// cached until 5 minutes before they expire, and refetched at most once a minute otherwise: a metadata
// mock (amazon-ec2-metadata-mock) serves a fixed Expiration in 2020 (docs/protocol.md §8), which must
// not turn into a fetch per STS call.
import { ImdsError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Clock } from '../pods/types.js';

/** What this module reads of an upstream answer (owned here: upstream.ts imports this file). */
interface UpstreamAnswer {
  readonly status: number;
  readonly body: Buffer;
}

export interface NodeCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  readonly expiration?: Date;
}

const LIST = '/latest/meta-data/iam/security-credentials/';
const REFRESH_BEFORE_MS = 5 * 60_000;
const MIN_REFETCH_MS = 60_000;

export function createNodeCredentialSource(deps: {
  forward: (m: 'GET', path: string) => Promise<UpstreamAnswer>;
  clock: Clock;
  logger: Logger;
}) {
  let cached: { creds: NodeCredentials; refetchAt: number } | undefined;
  let pending: Promise<NodeCredentials> | undefined;

  async function fetchOnce(): Promise<NodeCredentials> {
    const list = await deps.forward('GET', LIST);
    if (list.status !== 200) throw unavailable(`node role listing answered ${list.status}`);
    const role = list.body.toString('utf8').split('\n')[0]!.trim();
    if (!/^[\w+=,.@-]{1,128}$/.test(role)) throw unavailable('node role listing is not a role name');
    const res = await deps.forward('GET', `${LIST}${role}`);
    if (res.status !== 200) throw unavailable(`node role credentials answered ${res.status}`);
    return parseCredentials(res.body.toString('utf8'));
  }

  return {
    async get(): Promise<NodeCredentials> {
      const now = deps.clock();
      if (cached !== undefined && now < cached.refetchAt) return cached.creds;
      pending ??= fetchOnce().finally(() => (pending = undefined));
      try {
        const creds = await pending;
        const exp = creds.expiration?.getTime() ?? Infinity;
        if (exp <= now) deps.logger.warn('node credentials from upstream are already expired');
        cached = { creds, refetchAt: Math.max(now + MIN_REFETCH_MS, exp - REFRESH_BEFORE_MS) };
        return creds;
      } catch (err) {
        // Keep serving the last good credentials while they are still valid.
        if (cached !== undefined && (cached.creds.expiration?.getTime() ?? Infinity) > now) {
          deps.logger.warn({ err }, 'node credential refresh failed; keeping the previous ones');
          return cached.creds;
        }
        throw err;
      }
    },
  };
}

function parseCredentials(text: string): NodeCredentials {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw unavailable('node credentials are not JSON');
  }
  if (typeof doc.Code === 'string' && doc.Code.toLowerCase() !== 'success') {
    throw unavailable(`node credentials Code ${doc.Code}`);
  }
  const { AccessKeyId, SecretAccessKey, Token, Expiration } = doc;
  if (typeof AccessKeyId !== 'string' || typeof SecretAccessKey !== 'string') {
    throw unavailable('node credentials lack AccessKeyId/SecretAccessKey');
  }
  const expiration = typeof Expiration === 'string' ? new Date(Expiration) : undefined;
  return {
    accessKeyId: AccessKeyId,
    secretAccessKey: SecretAccessKey,
    ...(typeof Token === 'string' ? { sessionToken: Token } : {}),
    ...(expiration !== undefined && !Number.isNaN(expiration.getTime()) ? { expiration } : {}),
  };
}

const unavailable = (detail: string) => new ImdsError('CREDENTIALS_UNAVAILABLE', detail);
