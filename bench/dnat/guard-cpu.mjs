// Runs inside the node network namespace: CPU time of the rule guard's reconcile loop at idle (nothing
// drifts), as process CPU (user+system of this process) plus the CPU of the iptables children it ran
// (cutime+cstime from /proc/self/stat, counted once each child is reaped). With --backend none it only
// idles: the baseline of the same Node process.
import { readFileSync } from 'node:fs';
import { clearInterval, setInterval, setTimeout } from 'node:timers';
import { Registry } from 'prom-client';
import { createLogger } from '../../dist/logger.js';
import { createMetrics } from '../../dist/metrics.js';
import { startRuleGuard } from '../../dist/netfilter/guard.js';

const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')));
const seconds = Math.min(Number(args.seconds ?? 30), 300);
const interval = Number(args.interval ?? 2000);
const TICK = 100; // USER_HZ on Linux

function cpu() {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const children = (Number(f[13]) + Number(f[14])) / TICK; // fields 16, 17: cutime, cstime
  const self = process.cpuUsage();
  return { self: (self.user + self.system) / 1e6, children };
}

const metrics = createMetrics(new Registry(), { defaults: false });
let guard;
if (args.backend !== 'none') {
  guard = await startRuleGuard(
    {
      interfaces: ['veth+'],
      listen: '0.0.0.0:8181',
      hostIp: '169.254.100.1',
      hostIpv6: undefined,
      ipv6: false,
      reconcileIntervalMs: interval,
      iptablesBackend: args.backend,
    },
    { logger: createLogger('silent'), metrics },
  );
}
const keepAlive = setInterval(() => {}, 1000);
const before = cpu();
await new Promise((r) => setTimeout(r, seconds * 1000));
const after = cpu();
clearInterval(keepAlive);
await guard?.stop();
const passes = (await metrics.rulesReconcileDuration.get()).values.find((v) =>
  v.metricName?.endsWith('_count'),
);
const repairs = (await metrics.rulesRepairs.get()).values.reduce((a, v) => a + v.value, 0);
process.stdout.write(
  `${JSON.stringify({ seconds, self: after.self - before.self, children: after.children - before.children, passes: passes?.value ?? 0, repairs })}\n`,
);
