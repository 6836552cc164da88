// Gives the memory of a burst back once the agent is quiet again. On Node 24 (V8 13.6) V8's own memory
// reducer never does it after a burst: its timer keeps finding the allocation rate high and waits another
// 8 s, for as long as the agent stays idle, so RSS stays at its post-burst level
// (bench/frontdoor/RESULTS.md, "Node 24 retune"). A memory-reducing full GC, `gc()` with the flavor
// 'last-resort' (the global `gc` exists only with --expose-gc, which src/main.ts passes:
// https://nodejs.org/api/cli.html#--expose-gc), returns it: 94.5 → 80.0 MB RSS in that benchmark, where a
// regular full GC returned nothing. That GC pauses the agent for ~50-100 ms (two full compactions of a
// ~20 MB heap on the benchmark machine), so it runs only when RSS has grown well past its level after the
// last such GC and then a whole period went by with (almost) no pod requests and little CPU: one GC per
// burst, never while pods are being served.
import type { Logger } from 'pino';

export interface TrimSample {
  /** Resident set size, bytes. */
  readonly rss: number;
  /** Pod requests answered during the last period. */
  readonly requests: number;
  /** CPU time (user + system) the process used during the last period, microseconds. */
  readonly cpuUs: number;
  /** Length of that period, microseconds. */
  readonly periodUs: number;
}

export interface TrimPolicy {
  /** RSS growth over the level after the last trim that is worth a GC, bytes. */
  readonly growthBytes: number;
  /** At most this many pod requests in a period that counts as quiet. */
  readonly quietRequests: number;
  /** Share of one core below which a period counts as quiet. */
  readonly quietCpuShare: number;
}

// 5 requests per 5 s period: the occasional SDK refresh may wait out the pause; 1,000 req/s never does.
export const TRIM_POLICY: TrimPolicy = { growthBytes: 8 * 2 ** 20, quietRequests: 5, quietCpuShare: 0.05 };

/** Whether to run a memory-reducing GC now. */
export function shouldTrim(baselineRss: number, s: TrimSample, p: TrimPolicy = TRIM_POLICY): boolean {
  return (
    s.rss - baselineRss >= p.growthBytes &&
    s.requests <= p.quietRequests &&
    s.cpuUs < p.quietCpuShare * s.periodUs
  );
}

export interface HeapTrimDeps {
  readonly logger: Pick<Logger, 'debug'>;
  /** The global `gc` (undefined without --expose-gc: then nothing is ever trimmed). */
  readonly gc?: NodeJS.GCFunction;
  /** Pod requests answered so far (a running total). */
  readonly requests: () => Promise<number>;
  readonly rss?: () => number;
  readonly cpuUs?: () => number;
  readonly nowUs?: () => number;
  readonly intervalMs?: number;
}

export interface HeapTrim {
  /** One check; the interval calls it. */
  tick(): Promise<void>;
  stop(): void;
}

export function startHeapTrim(d: HeapTrimDeps): HeapTrim {
  const rss = d.rss ?? (() => process.memoryUsage.rss());
  const cpuUs = d.cpuUs ?? (() => (({ user, system }) => user + system)(process.cpuUsage()));
  const nowUs = d.nowUs ?? (() => performance.now() * 1000);
  // 0 at start: the first quiet period after start-up also gives the start-up garbage back.
  let baseline = 0;
  let lastCpu = cpuUs();
  let lastAt = nowUs();
  let lastRequests = 0;
  const tick = async () => {
    const served = await d.requests();
    const [cpu, at] = [cpuUs(), nowUs()];
    const sample = {
      rss: rss(),
      requests: served - lastRequests,
      cpuUs: cpu - lastCpu,
      periodUs: at - lastAt,
    };
    [lastCpu, lastAt, lastRequests] = [cpu, at, served];
    if (d.gc === undefined || !shouldTrim(baseline, sample)) return;
    d.gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    baseline = rss();
    d.logger.debug({ rssBefore: sample.rss, rssAfter: baseline }, 'memory-reducing GC after a burst');
    // The GC's own CPU must not make the next period look busy.
    [lastCpu, lastAt] = [cpuUs(), nowUs()];
  };
  const timer = setInterval(
    () => void tick().catch((err: unknown) => d.logger.debug({ err }, 'heap trim check failed')),
    d.intervalMs ?? 5000,
  );
  timer.unref();
  return { tick, stop: () => clearInterval(timer) };
}
