// Where `serve` writes its pino lines: every line logged during one event-loop turn goes out in ONE
// synchronous write(2), at the end of that turn (setImmediate), through sonic-boom in sync mode (which
// handles partial writes and EAGAIN on a non-blocking pipe).
//
// Why not pino.destination({ sync: false })? Under load (one decision line per credential request, issue
// 3) its cost per line was measured at 5-8 µs of the agent's ~50 µs CPU per request (bench/frontdoor,
// 2026-11-26): every write() re-measures the whole pending string (Buffer.byteLength of a growing cons
// string, so it is flattened and scanned again), and each flush is a libuv thread-pool round trip. The
// batch costs one join and one syscall per turn. Nothing waits longer than the current turn, so a lone
// line (a denial at 3 a.m.) is written as promptly as before. A log reader that stops reading blocks the
// agent at the write, as synchronous stdout does, instead of buffering without bound.
import { pino } from 'pino';

export interface BatchedDestination {
  write(line: string): void;
  /** Writes what is pending now (shutdown, tests). */
  flushSync(): void;
  /** pino's logger.flush(cb) calls this. */
  flush(cb?: (err?: Error) => void): void;
}

export function createBatchedDestination(dest: number | string): BatchedDestination {
  const out = pino.destination({ dest, sync: true });
  let pending: string[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    const text = pending.length === 1 ? pending[0]! : pending.join('');
    pending = [];
    out.write(text);
  };
  return {
    write(line) {
      if (pending.push(line) === 1) setImmediate(flush);
    },
    flushSync() {
      flush();
      out.flushSync();
    },
    flush(cb) {
      try {
        flush();
        cb?.();
      } catch (err) {
        cb?.(err as Error);
      }
    },
  };
}
