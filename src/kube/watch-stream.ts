// The watch stream's framing: the API server's JSON-lines stream, one WatchEvent per line, split across
// chunks anywhere: https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
export interface WatchEvent<T> {
  readonly type: WatchEventType;
  readonly object: T;
}

/** The watch stream broke its protocol (a line that is not a WatchEvent). */
export class WatchStreamError extends Error {
  override readonly name = 'WatchStreamError';
}

const WATCH_TYPES = new Set(['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR']);

/** Calls `line` for each non-blank line, newline-terminated or the final unterminated one. */
export async function readLines(body: AsyncIterable<Buffer>, line: (s: string) => void): Promise<void> {
  const decoder = new TextDecoder(); // stream mode: a UTF-8 character may straddle two chunks
  let buf = '';
  for await (const chunk of body) {
    let from = buf.length;
    buf += decoder.decode(chunk, { stream: true });
    let nl: number;
    let start = 0;
    while ((nl = buf.indexOf('\n', from)) >= 0) {
      const text = buf.slice(start, nl);
      if (text.trim() !== '') line(text);
      start = nl + 1;
      from = start;
    }
    buf = buf.slice(start);
  }
  buf += decoder.decode();
  if (buf.trim() !== '') line(buf);
}

export function parseEvent<T>(line: string): WatchEvent<T> {
  const s = line.trim();
  let e: unknown;
  try {
    e = JSON.parse(s);
  } catch {
    throw new WatchStreamError(`malformed watch line: ${s.slice(0, 80)}`);
  }
  const ev = e as { type?: unknown; object?: unknown };
  if (
    typeof ev.type !== 'string' ||
    !WATCH_TYPES.has(ev.type) ||
    typeof ev.object !== 'object' ||
    !ev.object
  ) {
    throw new WatchStreamError(`not a watch event: ${s.slice(0, 80)}`);
  }
  return { type: ev.type as WatchEventType, object: ev.object as T };
}
