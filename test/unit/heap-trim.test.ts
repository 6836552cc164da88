import { describe, expect, it, vi } from 'vitest';
import { shouldTrim, startHeapTrim, TRIM_POLICY, type TrimSample } from '../../src/heap-trim.js';

const MB = 2 ** 20;
const P = 5_000_000; // a 5 s period, µs
const s = (rss: number, requests: number, cpuUs: number): TrimSample => ({
  rss,
  requests,
  cpuUs,
  periodUs: P,
});

describe('shouldTrim', () => {
  it.each<[string, number, TrimSample, boolean]>([
    ['grown and quiet', 80 * MB, s(95 * MB, 0, 10_000), true],
    ['grown exactly the threshold, quiet', 80 * MB, s(88 * MB, 0, 0), true],
    ['grown, a few SDK refreshes', 80 * MB, s(95 * MB, 5, 1_000), true],
    ['grown, a burst going on', 80 * MB, s(95 * MB, 90_000, 2_000_000), false],
    ['grown, a paced 1,000 req/s at little CPU', 80 * MB, s(95 * MB, 5_000, 185_000), false],
    ['grown, no requests but busy with other work', 80 * MB, s(95 * MB, 0, 250_000), false],
    ['quiet, not grown enough', 80 * MB, s(87 * MB, 0, 0), false],
    ['quiet, shrunk', 80 * MB, s(70 * MB, 0, 0), false],
    ['first check after start-up (baseline 0), quiet', 0, s(90 * MB, 0, 1_000), true],
  ])('%s', (_name, baseline, sample, want) => {
    expect(shouldTrim(baseline, sample, TRIM_POLICY)).toBe(want);
  });
});

describe('startHeapTrim', () => {
  /** withGc: the RSS a GC leaves behind (a fake gc), or undefined for no --expose-gc. */
  function harness(withGc?: number) {
    const state = { rss: 90 * MB, cpu: 0, now: 0, requests: 0 };
    const gc =
      withGc === undefined
        ? undefined
        : vi.fn(() => {
            state.rss = withGc;
          });
    const debug = vi.fn();
    const trim = startHeapTrim({
      logger: { debug } as never,
      gc: gc as unknown as NodeJS.GCFunction | undefined,
      requests: () => Promise.resolve(state.requests),
      rss: () => state.rss,
      cpuUs: () => state.cpu,
      nowUs: () => state.now,
      intervalMs: 3_600_000,
    });
    const period = async (cpuUs: number, rss: number, requests = 0) => {
      state.now += P;
      state.cpu += cpuUs;
      state.requests += requests;
      state.rss = rss;
      await trim.tick();
    };
    return { debug, trim, period, gc };
  }

  it('one memory-reducing GC per burst: once quiet, never while pods are served, not again until RSS grows', async () => {
    const h = harness(80 * MB);
    const gc = h.gc!;
    // Start-up: quiet, so the start-up garbage goes first.
    await h.period(1_000, 90 * MB);
    expect(gc).toHaveBeenCalledTimes(1);
    expect(gc).toHaveBeenLastCalledWith({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    await h.period(1_000, 80 * MB);
    // A burst, then a paced 1,000 req/s: RSS grows while pods are served; no GC.
    await h.period(4_000_000, 95 * MB, 100_000);
    await h.period(4_500_000, 97 * MB, 120_000);
    await h.period(185_000, 97 * MB, 5_000);
    expect(gc).toHaveBeenCalledTimes(1);
    // Quiet again: one GC.
    await h.period(20_000, 97 * MB, 1);
    expect(gc).toHaveBeenCalledTimes(2);
    expect(h.debug).toHaveBeenLastCalledWith(
      { rssBefore: 97 * MB, rssAfter: 80 * MB },
      'memory-reducing GC after a burst',
    );
    // Still quiet, RSS near where the GC left it: nothing more.
    await h.period(20_000, 81 * MB);
    await h.period(20_000, 85 * MB);
    expect(gc).toHaveBeenCalledTimes(2);
    h.trim.stop();
  });

  it('does nothing without --expose-gc', async () => {
    const h = harness();
    await h.period(0, 200 * MB);
    expect(h.debug).not.toHaveBeenCalled();
    h.trim.stop();
  });
});
