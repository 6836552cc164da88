// Runs inside the node network namespace: the smallest HTTP answer, so the benchmark measures the path
// to it (direct vs through the DNAT), not the agent.
import http from 'node:http';

const [host, port] = process.argv.slice(2);
http
  .createServer((_req, res) => res.end('ok'))
  .listen(Number(port), host, () => process.stdout.write('ready\n'));
