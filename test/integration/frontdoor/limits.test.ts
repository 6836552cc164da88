// Issue 11, point 1 and 3, against the real agent (serve() with the real upstream client, real STS issuer
// and cache against moto, amazon-ec2-metadata-mock behind a recording proxy) over real loopback sockets:
// one pod (127.0.0.2) opens hundreds of idle and half-sent connections; its neighbour (127.0.0.3) keeps
// getting its credentials promptly; the flood is refused past the cap and cut at the deadline.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hold, raw, request, status, type Held } from '../../unit/http/sockets.js';
import {
  ROLE,
  ROLE_ARN,
  call,
  recordingUpstream,
  startAemm,
  startAgent,
  type Aemm,
  type Agent,
} from './harness.js';

const FLOODER = '127.0.0.2';
const NEIGHBOUR = '127.0.0.3';
const CAP = 20;
// Long enough that the flood is still held while the neighbour is measured on a loaded machine.
const HEADERS_MS = 2500;
const CREDS = `/latest/meta-data/iam/security-credentials/${ROLE}`;

let aemm: Aemm;
let rec: Awaited<ReturnType<typeof recordingUpstream>>;
let agent: Agent;
let port: number;
let nodeSecret: string;

beforeAll(async () => {
  aemm = await startAemm();
  rec = await recordingUpstream(aemm.url);
  agent = await startAgent({
    upstream: rec.url,
    pods: [
      { ip: FLOODER, name: 'flooder-0', roleArn: ROLE_ARN },
      { ip: NEIGHBOUR, name: 'neighbour-0', roleArn: ROLE_ARN },
    ],
    args: [`--max-connections-per-source=${CAP}`, `--headers-timeout-ms=${HEADERS_MS}`],
  });
  port = Number(new URL(agent.url).port);
  const node = await call(`${aemm.url}/latest/meta-data/iam/security-credentials/`);
  const nodeCreds = await call(`${aemm.url}/latest/meta-data/iam/security-credentials/${node.text.trim()}`);
  nodeSecret = (JSON.parse(nodeCreds.text) as { SecretAccessKey: string }).SecretAccessKey;
  const warm = await call(`${agent.url}${CREDS}`, { localAddress: NEIGHBOUR });
  if (warm.status !== 200) throw new Error(`warm-up answered ${warm.status}: ${warm.text}`);
});
afterAll(async () => {
  await agent?.stop();
  await rec?.stop();
  await aemm?.stop();
});

const metrics = async () => (await call(`${agent.metricsUrl}/metrics`)).text;
const counter = (text: string, reason: string) =>
  Number(
    new RegExp(`imdsgate_connections_refused_total\\{reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 0,
  );

describe('one pod floods the front door', () => {
  const flood: Held[] = [];

  afterAll(() => {
    for (const c of flood) c.socket.destroy();
  });

  it('refuses its connections past the cap with 429 while the neighbour is served promptly', async () => {
    const opened = await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        hold(port, {
          localAddress: FLOODER,
          ...(i % 2 ? { send: 'GET /latest/meta-data/ HTTP/1.1\r\nX: ' } : {}),
        }),
      ),
    );
    flood.push(...opened);
    const held = () => metrics().then((m) => new RegExp(`imdsgate_connections_open ${CAP}\\b`).test(m));
    await expect.poll(held).toBe(true);

    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      const res = await call(`${agent.url}${CREDS}`, { localAddress: NEIGHBOUR });
      times.push(performance.now() - t0);
      expect(res.status).toBe(200);
      expect(res.text).toContain('"AccessKeyId"');
      expect(res.text).not.toContain(nodeSecret);
    }
    // Promptly: well before the flood's deadline, on a machine other test runs share.
    times.sort((a, b) => a - b);
    expect(times[5]).toBeLessThan(100);
    expect(times[9]).toBeLessThan(HEADERS_MS / 2);
    // Everything past the cap was answered 429 and closed; the CAP admitted ones are still held.
    const ended: { data: string; ms: number }[] = [];
    for (const c of flood) void c.closed.then((r) => ended.push(r));
    await expect.poll(() => ended.length).toBe(300 - CAP);
    for (const a of ended) expect(status(a.data), a.data).toBe(429);
    expect(await held()).toBe(true);
    const m = await metrics();
    expect(counter(m, 'source_connections')).toBe(300 - CAP);
  });

  it('cuts the held ones at the deadline: idle ones closed silently, half-sent heads answered 408', async () => {
    const closes = await Promise.all(flood.map((c) => c.closed));
    for (const c of closes) expect(c.ms).toBeLessThan(HEADERS_MS + 1_500);
    const held = closes.filter((c) => status(c.data) !== 429);
    expect(held).toHaveLength(CAP);
    expect(held.filter((c) => c.data === '').length + held.filter((c) => status(c.data) === 408).length).toBe(
      CAP,
    );
    const m = await metrics();
    expect(counter(m, 'first_byte_timeout') + counter(m, 'request_timeout')).toBe(CAP);
    expect(m).toMatch(/imdsgate_connections_open 0\b/);
    // The pod itself is served again once its connections are gone.
    expect((await call(`${agent.url}${CREDS}`, { localAddress: FLOODER })).status).toBe(200);
  });

  it('never sent any of the flood upstream', () => {
    expect(rec.seen.filter((r) => r.url === '/latest/meta-data/')).toEqual([]);
  });
});

describe('half-closed requests against the real agent', () => {
  it.each([
    ['credentials (agent-made)', CREDS, '"SecretAccessKey"'],
    ['a forwarded path (upstream round trip after the FIN)', '/latest/meta-data/instance-id', 'i-'],
  ])('%s: answered after the client shut down its write side', async (_n, path, expected) => {
    const res = await raw(port, request(path).replace('Connection: close\r\n', ''), {
      localAddress: NEIGHBOUR,
    });
    expect(status(res), res).toBe(200);
    expect(res).toContain(expected);
    expect(res).not.toContain(nodeSecret);
  });
});
