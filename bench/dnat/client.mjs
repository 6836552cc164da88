// Runs inside the pod network namespace: COUNT sequential GETs to URL, each on a new TCP connection
// (mode "close": the DNAT and conntrack entry are set up every time) or on one kept-alive connection
// (mode "keepalive": only the per-packet conntrack lookup remains). Prints latencies in microseconds.
import http from 'node:http';

const [url, countArg, mode] = process.argv.slice(2);
const count = Math.min(Number(countArg), 20_000); // bounded, whatever is asked
const agent = new http.Agent({ keepAlive: mode === 'keepalive', maxSockets: 1 });

function once() {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.get(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(Number(process.hrtime.bigint() - t0) / 1000));
    });
    req.setTimeout(2000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

for (let i = 0; i < 50; i++) await once(); // warm-up, not recorded
const us = [];
for (let i = 0; i < count; i++) us.push(await once());
agent.destroy();
process.stdout.write(`${JSON.stringify(us)}\n`);
