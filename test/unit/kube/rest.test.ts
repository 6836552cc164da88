// The REST client against a scripted HTTP server on loopback (the real API server is exercised in
// test/integration/identity): JSON-lines framing, error mapping, token re-read, paging, dead streams.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { RateLimit } from '../../../src/kube/backoff.js';
import type { TokenProvider } from '../../../src/kube/kubeconfig.js';
import {
  KubeApiError,
  WatchStreamError,
  createKubeClient,
  type KubeClient,
  type WatchEvent,
} from '../../../src/kube/rest.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
let server: Server | undefined;
let client: KubeClient | undefined;
afterEach(async () => {
  await client?.close();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  server = client = undefined;
});

async function serve(
  handler: Handler,
  o: {
    prefix?: string;
    token?: TokenProvider;
    timeoutMs?: number;
    listTimeoutMs?: number;
    rateLimit?: RateLimit;
    onResponse?: (s: number | 'error') => void;
  } = {},
) {
  server = createServer(handler);
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  client = createKubeClient(
    {
      server: `http://127.0.0.1:${port}${o.prefix ?? ''}`,
      insecureSkipTlsVerify: false,
      source: 'test',
      ...(o.token ? { token: o.token } : {}),
    },
    {
      pageSize: 2,
      rateLimit: o.rateLimit ?? { qps: 0, burst: 0 },
      ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
      ...(o.listTimeoutMs ? { listTimeoutMs: o.listTimeoutMs } : {}),
      ...(o.onResponse ? { onResponse: o.onResponse } : {}),
    },
  );
  return client;
}

const ev = (type: string, name: string, rv = '1') =>
  JSON.stringify({ type, object: { metadata: { name, resourceVersion: rv } } });
const names = (events: WatchEvent<{ metadata: { name: string } }>[]) =>
  events.map((e) => `${e.type}:${e.object.metadata.name}`);

/** Writes `chunks` with a pause between them so they arrive as separate reads. */
const stream =
  (chunks: (string | Buffer)[], end = true): Handler =>
  (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    void (async () => {
      for (const c of chunks) {
        res.write(c);
        await new Promise((r) => setTimeout(r, 15));
      }
      if (end) res.end();
    })();
  };

describe('watch', () => {
  it('reassembles lines split anywhere, also inside a UTF-8 character; skips blank lines', async () => {
    const line1 = ev('ADDED', 'pöd-ü');
    const bytes = Buffer.from(
      `${line1}\n\n${ev('MODIFIED', 'b')}\n${ev('BOOKMARK', '')}\n${ev('DELETED', 'c')}`,
    );
    const cut = Buffer.from(line1).indexOf(Buffer.from('ü')) + 1; // between the two bytes of ü
    const c = await serve(
      stream([
        bytes.subarray(0, 5),
        bytes.subarray(5, cut),
        bytes.subarray(cut, cut + 90),
        bytes.subarray(cut + 90),
      ]),
    );
    const got: WatchEvent<{ metadata: { name: string } }>[] = [];
    await c.watch('/api/v1/pods', { resourceVersion: '5' }, (e) => got.push(e as (typeof got)[number]));
    expect(names(got)).toEqual(['ADDED:pöd-ü', 'MODIFIED:b', 'BOOKMARK:', 'DELETED:c']);
  });

  it('sends watch=true with the query', async () => {
    let url = '';
    const c = await serve((req, res) => {
      url = req.url ?? '';
      res.end();
    });
    await c.watch(
      '/api/v1/pods',
      { fieldSelector: 'spec.nodeName=n1', resourceVersion: '7' },
      () => undefined,
    );
    expect(url).toBe('/api/v1/pods?fieldSelector=spec.nodeName%3Dn1&resourceVersion=7&watch=true');
  });

  it.each([
    ['a malformed line', `${ev('ADDED', 'a')}\n{"type":"ADDED","obj`, /malformed watch line/],
    ['a line that is not an event', `${JSON.stringify({ kind: 'Status' })}\n`, /not a watch event/],
    ['an unknown event type', `${JSON.stringify({ type: 'RENAMED', object: {} })}\n`, /not a watch event/],
  ])('rejects %s with WatchStreamError', async (_n, body, msg) => {
    const c = await serve(stream([body]));
    const p = c.watch('/api/v1/pods', {}, () => undefined);
    await expect(p).rejects.toBeInstanceOf(WatchStreamError);
    await expect(p).rejects.toThrow(msg);
  });

  it('a dropped connection mid-stream rejects, naming the path', async () => {
    const c = await serve((_req, res) => {
      res.writeHead(200);
      res.write(`${ev('ADDED', 'a')}\n{"type":`);
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const got: unknown[] = [];
    await expect(c.watch('/api/v1/pods', {}, (e) => got.push(e))).rejects.toThrow(/WATCH \/api\/v1\/pods/);
    expect(got).toHaveLength(1);
  });

  it('a silent stream counts as dead after the idle timeout', async () => {
    const c = await serve(stream([`${ev('ADDED', 'a')}\n`], false));
    const t0 = Date.now();
    await expect(c.watch('/api/v1/pods', {}, () => undefined, { idleTimeoutMs: 300 })).rejects.toThrow(
      /WATCH .*timeout/i,
    );
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('aborting resolves quietly and delivers no later line of the same chunk', async () => {
    const c = await serve(stream([`${ev('ERROR', 'x')}\n${ev('ADDED', 'after')}\n`], false));
    const ctl = new AbortController();
    const got: string[] = [];
    await c.watch(
      '/api/v1/pods',
      {},
      (e) => {
        got.push(e.type);
        ctl.abort();
      },
      { signal: ctl.signal },
    );
    expect(got).toEqual(['ERROR']);
  });

  it('an HTTP error status (410 Gone) is a KubeApiError with its code', async () => {
    const c = await serve((_req, res) => {
      res.writeHead(410, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' }),
      );
    });
    await expect(c.watch('/api/v1/pods', {}, () => undefined)).rejects.toMatchObject({
      code: 410,
      reason: 'Expired',
      message: expect.stringContaining('too old resource version') as string,
    });
  });
});

describe('request', () => {
  it('maps a Status body to KubeApiError (403), and a non-JSON error body to its code', async () => {
    const c = await serve((req, res) => {
      if (req.url === '/api/v1/secrets') {
        res.writeHead(403, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', reason: 'Forbidden', message: 'secrets is forbidden' }));
      } else {
        res.writeHead(502);
        res.end('<html>bad gateway</html>');
      }
    });
    const e403 = await c.request('GET', '/api/v1/secrets').catch((e: unknown) => e);
    expect(e403).toBeInstanceOf(KubeApiError);
    expect(e403).toMatchObject({ code: 403, reason: 'Forbidden' });
    expect((e403 as Error).message).toBe('GET /api/v1/secrets: HTTP 403: secrets is forbidden');
    await expect(c.request('GET', '/x')).rejects.toMatchObject({
      code: 502,
      message: expect.stringContaining('HTTP 502') as string,
    });
  });

  it('a 200 that is not JSON is an error, an empty body is undefined', async () => {
    const c = await serve((req, res) => res.end(req.url === '/empty' ? '' : 'not json'));
    await expect(c.request('GET', '/x')).rejects.toThrow(/response is not JSON/);
    expect(await c.request('GET', '/empty')).toBeUndefined();
  });

  it('sends the body as JSON with the given content type, under the server path prefix', async () => {
    let seen: { url?: string; ct?: string; body: string; auth?: string } = { body: '' };
    const c = await serve(
      (req, res) => {
        let body = '';
        req.on('data', (d: Buffer) => (body += d.toString()));
        req.on('end', () => {
          seen = { url: req.url, ct: req.headers['content-type'], body, auth: req.headers.authorization };
          res.end('{"ok":true}');
        });
      },
      { prefix: '/k8s/clusters/c-1/', token: { get: () => 't0k', refresh: () => false } },
    );
    const ops = [{ op: 'remove', path: '/spec/taints/0' }];
    expect(
      await c.request('PATCH', '/api/v1/nodes/n', { body: ops, contentType: 'application/json-patch+json' }),
    ).toEqual({ ok: true });
    expect(seen).toEqual({
      url: '/k8s/clusters/c-1/api/v1/nodes/n',
      ct: 'application/json-patch+json',
      body: JSON.stringify(ops),
      auth: 'Bearer t0k',
    });
  });

  it('on 401 re-reads a rotated token once and retries; an unchanged token fails at once', async () => {
    const auths: string[] = [];
    let current = 'old';
    const token: TokenProvider = {
      get: () => current,
      refresh: () => {
        const changed = current !== 'new';
        current = 'new';
        return changed;
      },
    };
    const c = await serve(
      (req, res) => {
        auths.push(req.headers.authorization ?? '');
        res.writeHead(req.headers.authorization === 'Bearer new' ? 200 : 401);
        res.end(req.headers.authorization === 'Bearer new' ? '{}' : '{"message":"Unauthorized"}');
      },
      { token },
    );
    expect(await c.request('POST', '/api/v1/namespaces/a/events', { body: { a: 1 } })).toEqual({});
    expect(auths).toEqual(['Bearer old', 'Bearer new']);
    current = 'revoked';
    token.refresh = () => false;
    await expect(c.request('GET', '/x')).rejects.toMatchObject({ code: 401 });
    expect(auths).toHaveLength(3);
  });

  it('a refused connection names the method and path', async () => {
    const c = await serve((_q, r) => r.end());
    server?.close();
    server?.closeAllConnections();
    await expect(c.request('GET', '/api/v1/nodes/n')).rejects.toThrow(
      /^GET \/api\/v1\/nodes\/n: .*ECONNREFUSED/,
    );
  });
});

describe('list', () => {
  it('follows continue tokens and returns the resourceVersion with all items', async () => {
    const urls: string[] = [];
    const c = await serve((req, res) => {
      urls.push(req.url ?? '');
      const page2 = req.url?.includes('continue=') === true;
      res.end(
        JSON.stringify({
          metadata: { resourceVersion: '42', ...(page2 ? {} : { continue: 'tok/1' }) },
          items: page2 ? [{ n: 3 }] : [{ n: 1 }, { n: 2 }],
        }),
      );
    });
    const r = await c.list('/api/v1/pods', { fieldSelector: 'spec.nodeName=a' });
    expect(r).toEqual({ items: [{ n: 1 }, { n: 2 }, { n: 3 }], resourceVersion: '42' });
    expect(urls).toEqual([
      '/api/v1/pods?fieldSelector=spec.nodeName%3Da&limit=2',
      '/api/v1/pods?fieldSelector=spec.nodeName%3Da&limit=2&continue=tok%2F1',
    ]);
  });
});

describe('deadlines, Retry-After, rate limit, media type', () => {
  it('a request past its deadline is aborted: the server sees its connection close', async () => {
    let closed = false;
    const c = await serve(
      (req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"items":['); // then nothing: a list that stalls mid-body
        req.socket.on('close', () => (closed = true));
      },
      { listTimeoutMs: 150 },
    );
    const t0 = Date.now();
    await expect(c.list('/api/v1/pods')).rejects.toThrow(
      /GET \/api\/v1\/pods: timed out \(request aborted\)/,
    );
    expect(Date.now() - t0).toBeLessThan(1000);
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(true);
  });

  it('list pages and watch headers wait up to listTimeoutMs (APF queues), other requests timeoutMs', async () => {
    const c = await serve(
      (req, res) => {
        // Answers after 300 ms, as a request APF held in a queue.
        setTimeout(() => {
          if (req.url?.includes('watch=true')) res.writeHead(200).end();
          else res.end(JSON.stringify({ metadata: { resourceVersion: '1' }, items: [] }));
        }, 300);
      },
      { timeoutMs: 100, listTimeoutMs: 5000 },
    );
    await expect(c.list('/api/v1/pods')).resolves.toMatchObject({ resourceVersion: '1' });
    await expect(c.watch('/api/v1/pods', {}, () => undefined)).resolves.toBeUndefined();
    await expect(c.request('GET', '/api/v1/pods')).rejects.toThrow(/timed out/);
  });

  it("a caller's signal aborts a list between pages and closes the connection", async () => {
    let closed = 0;
    const ctl = new AbortController();
    const c = await serve((req, res) => {
      req.socket.once('close', () => (closed += 1));
      if (req.url?.includes('continue=')) {
        ctl.abort();
        return; // never answers
      }
      res.end(JSON.stringify({ metadata: { continue: 'x' }, items: [{}] }));
    });
    await expect(c.list('/api/v1/pods', {}, { signal: ctl.signal })).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBeGreaterThanOrEqual(1);
  });

  it('429 carries Retry-After (ms) on the KubeApiError; a watch 429 too', async () => {
    const c = await serve((_req, res) => {
      res.writeHead(429, { 'retry-after': '2', 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', code: 429, reason: 'TooManyRequests', message: 'slow down' }));
    });
    const err = await c.request('GET', '/api/v1/pods').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect(err).toMatchObject({ code: 429, reason: 'TooManyRequests', retryAfterMs: 2000 });
    const werr = await c.watch('/api/v1/pods', {}, () => undefined).catch((e: unknown) => e);
    expect(werr).toMatchObject({ code: 429, retryAfterMs: 2000 });
  });

  it('reports every answer to onResponse (the metric), a missed deadline as error, a caller abort not', async () => {
    const seen: (number | 'error')[] = [];
    const c = await serve(
      (req, res) => {
        if (req.url?.includes('stall')) return; // never answers
        const status = Number(/status=(\d+)/.exec(req.url ?? '')?.[1] ?? 200);
        res.writeHead(status, { 'content-type': 'application/json', 'retry-after': '1' });
        res.end('{}');
      },
      { timeoutMs: 500, onResponse: (s) => seen.push(s) },
    );
    await c.request('GET', '/x', { query: { status: 200 } });
    for (const status of [429, 503, 404])
      await expect(c.request('GET', '/x', { query: { status } })).rejects.toMatchObject({ code: status });
    await expect(c.request('GET', '/x', { query: { stall: 1 } })).rejects.toThrow(/timed out/);
    const ctl = new AbortController();
    const aborted = c.request('GET', '/x', { query: { stall: 1 }, signal: ctl.signal });
    setTimeout(() => ctl.abort(), 20);
    await expect(aborted).rejects.toThrow();
    expect(seen).toEqual([200, 429, 503, 404, 'error']);
  });

  it('sends the Accept header given (metadata-only lists and watches)', async () => {
    const accepts: string[] = [];
    const c = await serve((req, res) => {
      accepts.push(req.headers.accept ?? '');
      if (req.url?.includes('watch=true')) res.end();
      else res.end(JSON.stringify({ metadata: { resourceVersion: '1' }, items: [] }));
    });
    await c.list(
      '/api/v1/namespaces',
      {},
      { accept: 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1' },
    );
    await c.watch('/api/v1/namespaces', {}, () => undefined, {
      accept: 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1',
    });
    await c.request('GET', '/api/v1/namespaces/x');
    expect(accepts).toEqual([
      'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1',
      'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1',
      'application/json',
    ]);
  });

  it('paces request starts with the token bucket (burst, then qps)', async () => {
    const at: number[] = [];
    const c = await serve(
      (_req, res) => {
        at.push(Date.now());
        res.end('{}');
      },
      { rateLimit: { qps: 20, burst: 2 } },
    );
    const t0 = Date.now();
    await Promise.all(Array.from({ length: 4 }, () => c.request('GET', '/x')));
    // Two at once, then one per 50 ms: the fourth cannot start before ~100 ms after the bucket was made.
    expect(Math.max(...at) - t0).toBeGreaterThanOrEqual(80);
  });

  it('a continue page is requested without the first page resourceVersion', async () => {
    const urls: string[] = [];
    const c = await serve((req, res) => {
      urls.push(req.url ?? '');
      const more = !req.url?.includes('continue=');
      res.end(
        JSON.stringify({ metadata: { resourceVersion: '9', ...(more ? { continue: 'c' } : {}) }, items: [] }),
      );
    });
    await c.list('/api/v1/pods', { resourceVersion: '0' });
    expect(urls).toEqual(['/api/v1/pods?resourceVersion=0&limit=2', '/api/v1/pods?limit=2&continue=c']);
  });

  it('keep() is applied to each item as its page arrives; undefined drops it', async () => {
    const c = await serve((req, res) => {
      const more = !req.url?.includes('continue=');
      const items = more ? [{ n: 1 }, { n: 2 }] : [{ n: 3 }];
      res.end(
        JSON.stringify({ metadata: { resourceVersion: '5', ...(more ? { continue: 'c' } : {}) }, items }),
      );
    });
    const r = await c.list(
      '/api/v1/serviceaccounts',
      {},
      {
        keep: (i) => ((i as { n: number }).n === 2 ? undefined : { k: (i as { n: number }).n * 10 }),
      },
    );
    expect(r.items).toEqual([{ k: 10 }, { k: 30 }]);
  });

  it('one list takes one token, however many pages it has', async () => {
    const c = await serve(
      (req, res) => {
        const page = Number(new URL(req.url ?? '', 'http://x').searchParams.get('continue') ?? 0);
        const more = page < 4;
        res.end(
          JSON.stringify({ metadata: { ...(more ? { continue: String(page + 1) } : {}) }, items: [{}] }),
        );
      },
      { rateLimit: { qps: 1, burst: 1 } },
    );
    const t0 = Date.now();
    const r = await c.list('/api/v1/serviceaccounts');
    expect(r.items).toHaveLength(5);
    expect(Date.now() - t0).toBeLessThan(900);
  });
});
