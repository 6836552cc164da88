import { describe, expect, it, vi } from 'vitest';
import { shouldTrim, startHeapTrim, TRIM_POLICY, type TrimSample } from '../../src/heap-trim.js';

const MB = 2 ** 20;
const period = 5_000_000;

describe('shouldTrim', () => {
  it.each<[string, number, TrimSample, boolean]>([
    ['grown and quiet', 80 * MB, { rss: 95 * MB, cpuUs: 10_000, periodUs: period }, true],
    ['grown exactly the threshold, quiet', 80 * MB, { rss: 88 * MB, cpuUs: 0, periodUs: period }, true],
    [
      'grown, still busy (a burst going on)',
      80 * MB,
      { rss: 95 * MB, cpuUs: 2_000_000, periodUs: period },
      false,
    ],
    ['grown, just at the quiet share', 80 * MB, { rss: 95 * MB, cpuUs: 250_000, periodUs: period }, false],
    ['quiet, not grown enough', 80 * MB, { rss: 87 * MB, cpuUs: 0, periodUs: period }, false],
    ['quiet, shrunk', 80 * MB, { rss: 70 * MB, cpuUs: 0, periodUs: period }, false],
    [
      'first check after start-up (baseline 0), quiet',
      0,
      { rss: 90 * MB, cpuUs: 1_000, periodUs: period },
      true,
    ],
  ])('%s', (_name, baseline, sample, want) => {
    expect(shouldTrim(baseline, sample, TRIM_POLICY)).toBe(want);
  });
});

describe('startHeapTrim', () => {
  /** withGc: the RSS a GC leaves behind (a fake gc), or undefined for no --expose-gc. */
  function harness(withGc?: number) {
    const state = { rss: 90 * MB, cpu: 0, now: 0 };
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
      rss: () => state.rss,
      cpuUs: () => state.cpu,
      nowUs: () => state.now,
      intervalMs: 3_600_000,
    });
    const period = (cpuUs: number, rss: number) => {
      state.now += 5_000_000;
      state.cpu += cpuUs;
      state.rss = rss;
      trim.tick();
    };
    return { state, debug, trim, period, gc };
  }

  it('one memory-reducing GC per burst: after a quiet period, not during load, not again until RSS grows', () => {
    const h = harness(80 * MB);
    const gc = h.gc!;
    // Start-up: quiet, so the start-up garbage goes first.
    h.period(1_000, 90 * MB);
    expect(gc).toHaveBeenCalledTimes(1);
    expect(gc).toHaveBeenLastCalledWith({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    h.period(1_000, 80 * MB);
    // A burst: RSS grows while the agent is busy; no GC in its middle.
    h.period(4_000_000, 95 * MB);
    h.period(4_500_000, 97 * MB);
    expect(gc).toHaveBeenCalledTimes(1);
    // Quiet again: one GC.
    h.period(20_000, 97 * MB);
    expect(gc).toHaveBeenCalledTimes(2);
    expect(h.debug).toHaveBeenLastCalledWith(
      { rssBefore: 97 * MB, rssAfter: 80 * MB },
      'memory-reducing GC after a burst',
    );
    // Still quiet, RSS near where the GC left it: nothing more.
    h.period(20_000, 81 * MB);
    h.period(20_000, 85 * MB);
    expect(gc).toHaveBeenCalledTimes(2);
    h.trim.stop();
  });

  it('does nothing without --expose-gc', () => {
    const h = harness();
    h.period(0, 200 * MB);
    expect(h.debug).not.toHaveBeenCalled();
    h.trim.stop();
  });
});
