// Smoke test of amazon-ec2-metadata-mock: the IMDSv2 session flow, and the --imdsv2 mode.
import { afterEach, describe, expect, it } from 'vitest';
import { startAemm, type Aemm } from '../../env/aemm.js';

let aemm: Aemm | undefined;
afterEach(async () => {
  await aemm?.stop();
  aemm = undefined;
});

async function token(url: string): Promise<string> {
  const r = await fetch(`${url}/latest/api/token`, {
    method: 'PUT',
    headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' },
  });
  expect(r.status).toBe(200);
  return r.text();
}

describe('amazon-ec2-metadata-mock', () => {
  it('answers the IMDSv2 token flow: PUT a token, then GET with it', async () => {
    aemm = await startAemm();
    const t = await token(aemm.url);
    expect(t.length).toBeGreaterThan(10);
    const r = await fetch(`${aemm.url}/latest/meta-data/iam/security-credentials/`, {
      headers: { 'X-aws-ec2-metadata-token': t },
    });
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('baskinc-role');
  });

  it('in --imdsv2 mode refuses a token-less GET with 401 and accepts one with a token', async () => {
    aemm = await startAemm({ imdsv2Only: true });
    expect((await fetch(`${aemm.url}/latest/meta-data/instance-id`)).status).toBe(401);
    const t = await token(aemm.url);
    const r = await fetch(`${aemm.url}/latest/meta-data/instance-id`, {
      headers: { 'X-aws-ec2-metadata-token': t },
    });
    expect(r.status).toBe(200);
    expect(await r.text()).toMatch(/^i-/);
  });

  it('serves credentials given through config with a future expiry', async () => {
    const { aemmCredentialsConfig } = await import('../../env/aemm.js');
    const config = aemmCredentialsConfig({
      accessKeyId: 'ASIANODE',
      secretAccessKey: 's',
      token: 't',
      role: 'node',
    });
    aemm = await startAemm({ config });
    const r = await fetch(`${aemm.url}/latest/meta-data/iam/security-credentials/node`);
    const doc = (await r.json()) as { AccessKeyId: string; Expiration: string };
    expect(doc.AccessKeyId).toBe('ASIANODE');
    expect(Date.parse(doc.Expiration)).toBeGreaterThan(Date.now());
  });
});
