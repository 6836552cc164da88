// docs/protocol.md §13 (conformance checklist) #39-#49: real SDK clients get the pod's credentials through the agent, and
// their fallback behaviours are asserted. A recording proxy sits between client and agent (it adds no
// header) and can script the token PUT answer to provoke a fallback; GETs always reach the real agent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attempt, awsCliCallerArn, jsV3 } from './clients.js';
import {
  ROLE,
  ROLE_ARN,
  env,
  recordingUpstream,
  startAemm,
  startAgent,
  type Aemm,
  type Agent,
  type EnvLike,
  type Recorded,
} from './harness.js';

let e: EnvLike;
let aemm: Aemm;
let agent: Agent;
let podKey: string;
const LIST = '/latest/meta-data/iam/security-credentials/';

beforeAll(async () => {
  e = env();
  aemm = await startAemm();
  agent = await startAgent({
    upstream: aemm.url,
    pods: [{ ip: '127.0.0.1', name: 'app-0', roleArn: ROLE_ARN }],
  });
  const r = await fetch(`${agent.url}${LIST}${ROLE}`);
  podKey = ((await r.json()) as { AccessKeyId: string }).AccessKeyId;
});
afterAll(async () => {
  await agent?.stop();
  await aemm?.stop();
});

/** Client → recorder → agent; `tokenStatus` replaces the agent's answer to the token PUT. */
async function via(tokenStatus?: number) {
  return recordingUpstream(agent.url, (r) =>
    tokenStatus !== undefined && r.method === 'PUT' ? { status: tokenStatus } : undefined,
  );
}
const goToken = (r: Recorded) => r.headers['x-aws-ec2-metadata-token'];
const seq = (seen: { method: string; url: string }[]) => seen.map((r) => `${r.method} ${r.url}`);

describe('botocore', () => {
  it('#39 PUT token (TTL 21600), GET list, GET creds, and gets the pod key', async () => {
    const rec = await via();
    try {
      const r = await attempt('botocore', rec.url);
      expect(r.accessKeyId, r.raw).toBe(podKey);
      expect(seq(rec.seen)).toEqual(['PUT /latest/api/token', `GET ${LIST}`, `GET ${LIST}${ROLE}`]);
      expect(rec.seen[0]!.headers['x-aws-ec2-metadata-token-ttl-seconds']).toBe('21600');
      expect(rec.seen[1]!.headers['x-aws-ec2-metadata-token']).toBeTruthy();
    } finally {
      await rec.stop();
    }
  });

  it('#40 token PUT 405 → token-less GETs still get the pod key (IMDSv1 allowed)', async () => {
    const rec = await via(405);
    try {
      const r = await attempt('botocore', rec.url);
      expect(r.accessKeyId, r.raw).toBe(podKey);
      expect(rec.seen.slice(1).every((s) => s.headers['x-aws-ec2-metadata-token'] === undefined)).toBe(true);
    } finally {
      await rec.stop();
    }
  });

  it('#40 with AWS_EC2_METADATA_V1_DISABLED=true, no GET follows the 405 and no credentials are found', async () => {
    const rec = await via(405);
    try {
      const r = await attempt('botocore', rec.url, { AWS_EC2_METADATA_V1_DISABLED: 'true' });
      expect(r.accessKeyId).toBeUndefined();
      expect(seq(rec.seen)).toEqual(['PUT /latest/api/token']);
    } finally {
      await rec.stop();
    }
  });

  it('#41 token PUT 400 → no GET, no credentials', async () => {
    const rec = await via(400);
    try {
      const r = await attempt('botocore', rec.url);
      expect(r.accessKeyId).toBeUndefined();
      expect(seq(rec.seen)).toEqual(['PUT /latest/api/token']);
    } finally {
      await rec.stop();
    }
  });
});

describe('AWS CLI', () => {
  it('signs a real STS call with the pod role credentials', async () => {
    const r = await awsCliCallerArn(e.awsCli, agent.url, e.sts.endpoint);
    expect(r.error).toBeUndefined();
    expect(r.accessKeyId).toMatch(new RegExp(`:assumed-role/${ROLE}/`));
  });
});

describe('JS SDK v3 (@smithy/credential-provider-imds)', () => {
  it('#42 PUT, GET list, GET creds; every GET carries the token; no User-Agent', async () => {
    const rec = await via();
    try {
      const [r] = await jsV3(rec.url);
      expect(r!.accessKeyId, r!.raw).toBe(podKey);
      expect(seq(rec.seen)).toEqual(['PUT /latest/api/token', `GET ${LIST}`, `GET ${LIST}${ROLE}`]);
      for (const s of rec.seen.slice(1)) expect(s.headers['x-aws-ec2-metadata-token']).toBeTruthy();
      for (const s of rec.seen) expect(s.headers['user-agent']).toBeUndefined();
    } finally {
      await rec.stop();
    }
  });

  it('#43 token PUT 403 → v1 GETs, and no PUT on the next call', async () => {
    const rec = await via(403);
    try {
      const rs = await jsV3(rec.url, 2);
      expect(rs.map((r) => r.accessKeyId)).toEqual([podKey, podKey]);
      expect(seq(rec.seen).filter((s) => s.startsWith('PUT'))).toHaveLength(1);
      expect(seq(rec.seen)).toHaveLength(5);
    } finally {
      await rec.stop();
    }
  });

  it('#44 the agent never serves an Expiration in the past (JS would extend it silently)', async () => {
    const [r] = await jsV3(agent.url);
    expect(Date.parse(r!.raw.match(/"expiration":"([^"]+)"/)![1]!) - Date.now()).toBeGreaterThan(1500_000);
  });
});

describe('aws-sdk-go-v2 (feature/ec2/imds + ec2rolecreds)', () => {
  it('#45 sends TTL 300 and reuses one token for the listing and the credentials', async () => {
    const rec = await via();
    try {
      const r = await attempt('goimds', rec.url);
      expect(r.accessKeyId, r.raw).toBe(podKey);
      expect(seq(rec.seen)).toEqual(['PUT /latest/api/token', `GET ${LIST}`, `GET ${LIST}${ROLE}`]);
      expect(rec.seen[0]!.headers['x-aws-ec2-metadata-token-ttl-seconds']).toBe('300');
      expect(goToken(rec.seen[1]!)).toBeTruthy();
      expect(goToken(rec.seen[2]!)).toBe(goToken(rec.seen[1]!));
    } finally {
      await rec.stop();
    }
  });

  it('#46 a token answer without the TTL header leads to token-less GETs', async () => {
    const rec = await recordingUpstream(agent.url, (r) =>
      r.method === 'PUT' ? { status: 200, body: 'tok' } : undefined,
    );
    try {
      const r = await attempt('goimds', rec.url);
      expect(r.accessKeyId, r.raw).toBe(podKey);
      expect(rec.seen.filter((s) => s.method === 'GET').every((s) => goToken(s) === undefined)).toBe(true);
    } finally {
      await rec.stop();
    }
  });

  it('#47 a 401 on the credential GET makes it PUT again and retry within the same call', async () => {
    let rejected = false;
    const rec = await recordingUpstream(agent.url, (r) => {
      if (!rejected && r.method === 'GET' && r.url === `${LIST}${ROLE}`) {
        rejected = true;
        return { status: 401 };
      }
      return undefined;
    });
    try {
      const r = await attempt('goimds', rec.url);
      expect(r.accessKeyId, r.raw).toBe(podKey);
      expect(seq(rec.seen)).toEqual([
        'PUT /latest/api/token',
        `GET ${LIST}`,
        `GET ${LIST}${ROLE}`,
        'PUT /latest/api/token',
        `GET ${LIST}${ROLE}`,
      ]);
    } finally {
      await rec.stop();
    }
  });

  it('#48 credential JSON without Code (moto-style) makes the provider fail; the agent always sends Code', async () => {
    const noCode = JSON.stringify({
      AccessKeyId: 'ASIAX',
      SecretAccessKey: 's',
      Token: 't',
      Expiration: new Date(Date.now() + 3600_000).toISOString(),
    });
    const rec = await recordingUpstream(agent.url, (r) =>
      r.url === `${LIST}${ROLE}` ? { status: 200, body: noCode } : undefined,
    );
    try {
      expect((await attempt('goimds', rec.url)).accessKeyId).toBeUndefined();
    } finally {
      await rec.stop();
    }
  });

  it('#49 a served Expiration of now + 6 h is cached by the SDK only until now + 1 h', async () => {
    const sixHours = JSON.stringify({
      Code: 'Success',
      LastUpdated: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      Type: 'AWS-HMAC',
      AccessKeyId: 'ASIASIXHOURS',
      SecretAccessKey: 's',
      Token: 't',
      Expiration: new Date(Date.now() + 6 * 3600_000).toISOString().replace(/\.\d+Z$/, 'Z'),
    });
    const rec = await recordingUpstream(agent.url, (r) =>
      r.url === `${LIST}${ROLE}` ? { status: 200, body: sixHours } : undefined,
    );
    try {
      const r = await attempt('goimds', rec.url);
      expect(r.accessKeyId).toBe('ASIASIXHOURS');
      expect(Math.abs(Date.parse(r.expiration!) - (Date.now() + 3600_000))).toBeLessThan(120_000);
    } finally {
      await rec.stop();
    }
  });
});
