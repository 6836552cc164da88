// A client that lives in one pod namespace for the whole churn test and fires metadata requests on command,
// so that requests can start within a millisecond of an API call (spawning curl per request takes tens of
// milliseconds). Commands arrive over a Unix socket (filesystem paths are not per network namespace):
// one JSON line {"ms": N, "every": M, "path": P}, answered with a line `started` once the first request is sent, then one JSON line: every request's start and
// end time (ms since the epoch), status (0 = no HTTP answer) and body. A new TCP connection per request, as SDKs do.
import { Buffer } from 'node:buffer';
import { rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

const [socketPath, host = '169.254.169.254'] = process.argv.slice(2);
const now = () => performance.timeOrigin + performance.now();

function fire(path) {
  const sent = now();
  return new Promise((resolve) => {
    const chunks = [];
    const s = connect({ host, port: 80 });
    const done = (status, body) => {
      s.destroy();
      resolve({ sent, done: now(), status, body });
    };
    s.setTimeout(3000, () => done(0, 'timeout'));
    s.on('error', (e) => done(0, e.code ?? 'error'));
    s.on('connect', () => s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    s.on('data', (c) => chunks.push(c));
    s.on('end', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      done(status, text.slice(text.indexOf('\r\n\r\n') + 4));
    });
  });
}

async function burst({ ms, every, path }) {
  const pending = [];
  const end = now() + ms;
  while (now() < end) {
    pending.push(fire(path));
    await sleep(every);
  }
  return Promise.all(pending);
}

rmSync(socketPath, { force: true });
createServer((conn) => {
  let buf = '';
  conn.on('data', async (d) => {
    buf += d;
    const nl = buf.indexOf('\n');
    if (nl === -1) return;
    const done = burst(JSON.parse(buf.slice(0, nl)));
    conn.write('started\n'); // the first request is already on its way
    conn.end(JSON.stringify(await done) + '\n');
  });
}).listen(socketPath, () => console.log('prober ready'));
