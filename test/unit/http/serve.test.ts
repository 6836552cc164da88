// serve(): the composition root with a scripted loopback upstream, a real identity file and a fake
// issuer (STS is exercised in the integration tests). Real sockets on 127.0.0.1.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { createLogger } from '../../../src/logger.js';
import { hostPort, serve, type Served } from '../../../src/serve.js';
import { run } from '../../../src/commands/serve.js';

let upstream: Server;
let upstreamUp = true;
let dir: string;
let served: Served;
const NO_RULES = { IMDSGATE_MANAGE_RULES: 'false' };
const quiet = createLogger('silent', new Writable({ write: (_c, _e, cb) => cb() }));

beforeAll(async () => {
  upstream = createServer((req, res) => {
    if (!upstreamUp) return res.writeHead(500).end();
    if (req.method === 'PUT') return res.writeHead(200).end('up-token');
    if (req.url === '/latest/dynamic/instance-identity/document')
      return res.writeHead(200).end('{"region":"eu-west-1","accountId":"1","instanceId":"i"}');
    res.writeHead(200, { 'content-type': 'text/plain' }).end('i-0abc');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  dir = mkdtempSync(join(tmpdir(), 'imdsgate-serve-'));
  const file = join(dir, 'id.yaml');
  writeFileSync(
    file,
    'pods: [{ ip: 127.0.0.1, namespace: ns, name: p, serviceAccount: sa, roleArn: "arn:aws:iam::123456789012:role/r" }]\n',
  );
  const cfg = loadConfig(
    [
      '--listen=127.0.0.1:0',
      '--metrics-listen=127.0.0.1:0',
      `--upstream=http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
      `--identity-file=${file}`,
    ],
    NO_RULES,
  );
  served = await serve(cfg, {
    logger: quiet,
    credentialIssuer: {
      issue: async () => ({
        accessKeyId: 'ASIAPOD',
        secretAccessKey: 's',
        sessionToken: 't',
        expiration: new Date(Date.now() + 3600_000),
        lastUpdated: new Date(),
      }),
    },
  });
});
afterAll(async () => {
  await served?.close();
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const get = async (base: string, path: string) => {
  const res = await request(`${base}${path}`);
  return { status: res.statusCode, body: await res.body.text() };
};

describe('serve', () => {
  it('answers pods on the listen address', async () => {
    const base = served.addresses.listen;
    expect(await get(base, '/latest/meta-data/iam/security-credentials/')).toEqual({
      status: 200,
      body: 'r',
    });
    expect((await get(base, '/latest/meta-data/iam/security-credentials/r')).body).toContain(
      '"AccessKeyId" : "ASIAPOD"',
    );
    expect(await get(base, '/latest/meta-data/instance-id')).toEqual({ status: 200, body: 'i-0abc' });
  });

  it('serves /healthz, /readyz and /metrics on the metrics address only', async () => {
    const m = served.addresses.metrics;
    expect((await get(m, '/healthz')).status).toBe(200);
    expect(await get(m, '/readyz')).toEqual({ status: 200, body: 'ready\n' });
    const metrics = await get(m, '/metrics');
    expect(metrics.body).toContain('imdsgate_requests_total{route="credentials",method="GET",status="200"}');
    expect(metrics.body).toContain('imdsgate_ready 1');
    expect((await get(served.addresses.listen, '/metrics')).status).toBe(404);
  });

  it('is not ready while the upstream session fails', async () => {
    // A fresh serve whose upstream refuses the session.
    upstreamUp = false;
    try {
      const cfg = loadConfig(
        [
          '--listen=127.0.0.1:0',
          '--metrics-listen=127.0.0.1:0',
          '--upstream=http://127.0.0.1:1',
          '--identity-file=' + join(dir, 'id.yaml'),
          '--region=eu-west-1',
        ],
        NO_RULES,
      );
      const s = await serve(cfg, { logger: quiet });
      try {
        const r = await get(s.addresses.metrics, '/readyz');
        expect(r).toEqual({ status: 503, body: 'not ready: upstream IMDS: ECONNREFUSED\n' });
        expect((await get(s.addresses.listen, '/latest/meta-data/instance-id')).status).toBe(502);
      } finally {
        await s.close();
      }
    } finally {
      upstreamUp = true;
    }
  });

  it('fails to start with a clear message when the identity file is invalid or the region cannot be found', async () => {
    writeFileSync(join(dir, 'bad.yaml'), 'pods: [{ ip: nope }]');
    const bad = loadConfig(
      [
        '--listen=127.0.0.1:0',
        '--metrics-listen=127.0.0.1:0',
        `--identity-file=${join(dir, 'bad.yaml')}`,
        '--region=eu-west-1',
      ],
      NO_RULES,
    );
    await expect(serve(bad, { logger: quiet })).rejects.toThrow(/identity file .* is invalid/);
    const noRegion = loadConfig(
      [
        '--listen=127.0.0.1:0',
        '--metrics-listen=127.0.0.1:0',
        '--upstream=http://127.0.0.1:1',
        `--identity-file=${join(dir, 'id.yaml')}`,
      ],
      NO_RULES,
    );
    await expect(serve(noRegion, { logger: quiet })).rejects.toThrow(/--region is unset/);
  });

  it('parses listen addresses', () => {
    expect(hostPort('0.0.0.0:8181')).toEqual({ host: '0.0.0.0', port: 8181 });
    expect(hostPort('[::1]:9181')).toEqual({ host: '::1', port: 9181 });
  });
});

describe('serve command', () => {
  it('exits 2 with every problem before opening a port, and prints help', async () => {
    const errs: string[] = [];
    const orig = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (errs.push(s), true)) as typeof process.stderr.write;
    try {
      expect(await run(['--listen=nope', '--imdsv1=maybe'])).toBe(2);
    } finally {
      process.stderr.write = orig;
    }
    expect(errs.join('')).toMatch(/--listen[\s\S]*--imdsv1/);
    // Rule problems too: a bad --interfaces, and no address to DNAT to (the default --listen is 0.0.0.0).
    errs.length = 0;
    process.stderr.write = ((s: string) => (errs.push(s), true)) as typeof process.stderr.write;
    try {
      expect(await run(['--identity-file=/nonexistent.yaml', '--interfaces=a+,!b'])).toBe(2);
    } finally {
      process.stderr.write = orig;
    }
    expect(errs.join('')).toMatch(/--interfaces: mix[\s\S]*--host-ip is required/);
    const outs: string[] = [];
    const origOut = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => (outs.push(s), true)) as typeof process.stdout.write;
    try {
      expect(await run(['--help'])).toBe(0);
    } finally {
      process.stdout.write = origOut;
    }
    expect(outs.join('')).toContain('--identity-file');
  });
});

describe('serve readiness with --manage-rules', () => {
  it('stays not ready until the interception rules are installed', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const cfg = loadConfig(
      [
        '--listen=127.0.0.1:0',
        `--metrics-listen=127.0.0.1:${port}`,
        `--upstream=http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
        `--identity-file=${join(dir, 'id.yaml')}`,
        '--region=eu-west-1',
        '--host-ip=169.254.100.1',
      ],
      {},
    );
    let install: () => void = () => {};
    const installed = new Promise<void>((r) => (install = r));
    const starting = serve(cfg, {
      logger: quiet,
      startRules: async () => {
        await installed;
        return { problems: () => [], stop: async () => {} };
      },
      readInterfaces: async () => [{ name: 'veth1', ifindex: 5, iflink: 3, hasMaster: false }],
    });
    let r = { status: 0, body: '' };
    for (let i = 0; i < 100 && r.status === 0; i++) {
      r = await get(`http://127.0.0.1:${port}`, '/readyz').catch(() => r);
      if (r.status === 0) await new Promise((res) => setTimeout(res, 20));
    }
    expect(r).toEqual({ status: 503, body: 'not ready: interception rules not installed\n' });
    install();
    const s = await starting;
    try {
      expect(await get(s.addresses.metrics, '/readyz')).toEqual({ status: 200, body: 'ready\n' });
    } finally {
      await s.close();
    }
  });
});

describe('serve: readiness and metrics from live state', () => {
  const cfgWithRules = (metricsPort = 0) =>
    loadConfig(
      [
        '--listen=127.0.0.1:0',
        `--metrics-listen=127.0.0.1:${metricsPort}`,
        `--upstream=http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
        `--identity-file=${join(dir, 'id.yaml')}`,
        '--region=eu-west-1',
        '--reconcile-interval-ms=200',
        '--host-ip=169.254.100.1',
      ],
      {},
    );
  const scrape = async (s: { addresses: { metrics: string } }) =>
    (await get(s.addresses.metrics, '/metrics')).body;

  it('imdsgate_ready and build_info are right at the first scrape, without any /readyz request', async () => {
    const s = await serve(cfgWithRules(), {
      logger: quiet,
      startRules: async () => ({ problems: () => [], stop: async () => {} }),
      readInterfaces: async () => [{ name: 'veth1', ifindex: 5, iflink: 3, hasMaster: false }],
    });
    try {
      const m = await scrape(s);
      expect(m).toMatch(/^imdsgate_ready 1$/m);
      expect(m).toMatch(/^imdsgate_interception_ok\{reason=""\} 1$/m);
      expect(m).toMatch(
        new RegExp(
          `^imdsgate_build_info\\{version="[0-9.]+",node_version="${process.versions.node}",node_major="\\d+"\\} 1$`,
          'm',
        ),
      );
    } finally {
      await s.close();
    }
  });

  it('a pod interface the rules do not match: not ready, gauge 0 with the reason; ready once it is matched', async () => {
    let ifaces = [{ name: 'tap9f', ifindex: 7, iflink: 3, hasMaster: false }];
    let problems: string[] = [];
    const s = await serve(cfgWithRules(), {
      logger: quiet,
      startRules: async () => ({ problems: () => problems, stop: async () => {} }),
      readInterfaces: async () => ifaces,
    });
    try {
      expect((await get(s.addresses.metrics, '/readyz')).body).toMatch(
        /^not ready: interception self-check: unmatched_pod_interface: pod interfaces not matched by --interfaces=eni\+,cali\+,lxc\+,veth\+,cni0: tap9f/,
      );
      const m = await scrape(s);
      expect(m).toMatch(/^imdsgate_ready 0$/m);
      expect(m).toMatch(/^imdsgate_interception_ok\{reason="unmatched_pod_interface"\} 0$/m);
      ifaces = [{ name: 'veth9f', ifindex: 7, iflink: 3, hasMaster: false }];
      await new Promise((r) => setTimeout(r, 450)); // two --reconcile-interval-ms passes
      expect(await scrape(s)).toMatch(/^imdsgate_ready 1$/m);
      problems = ['interception rules (ipv4): last reconcile failed: xtables lock'];
      expect(await get(s.addresses.metrics, '/readyz')).toEqual({
        status: 503,
        body: 'not ready: interception rules (ipv4): last reconcile failed: xtables lock\n',
      });
      expect(await scrape(s)).toMatch(/^imdsgate_ready 0$/m);
    } finally {
      await s.close();
    }
  });
});
