// pino options shared by every command. Secrets never reach a log: tokens, keys and the IMDSv2 header
// are censored wherever they appear in a logged object.
import { pino, type Logger, type LevelWithSilent } from 'pino';

// Fixed paths only: pino compiles them into plain property accesses. Wildcard paths (`*.token`) cost
// 30-55 µs per line in bench/frontdoor, more than the whole request path; the agent logs flat objects,
// so every place a secret could sit is listed here instead.
const SECRET_KEYS = [
  'token',
  'Token',
  'SecretAccessKey',
  'secretAccessKey',
  'sessionToken',
  'SessionToken',
  'webIdentityToken',
  'authorization',
];
const CONTAINERS = ['credentials', 'creds', 'headers', 'req.headers'];
export const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...CONTAINERS.flatMap((c) => SECRET_KEYS.map((k) => `${c}.${k}`)),
  'headers["x-aws-ec2-metadata-token"]',
  'req.headers["x-aws-ec2-metadata-token"]',
];

export function createLogger(level: LevelWithSilent = 'info', destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { app: 'imdsgate' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: isoTimeMemo(),
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

export type { Logger };

/**
 * pino's isoTime, formatted once per millisecond: under load many lines share a millisecond, and
 * Date#toISOString was ~3% of a cached credential request's CPU (bench/frontdoor).
 */
export function isoTimeMemo(now: () => number = Date.now): () => string {
  let last = -1;
  let text = '';
  return () => {
    const t = now();
    if (t !== last) {
      last = t;
      text = `,"time":"${new Date(t).toISOString()}"`;
    }
    return text;
  };
}

type WarningSource = Pick<NodeJS.Process, 'execArgv' | 'on'>;
const oneLine = (text: string) => text.replace(/\s*\n\s*/g, ' ');
let warningSink: ((w: Error) => void) | undefined;

/**
 * Node's process warnings (deprecations, the AWS SDK's notice about Node versions) as log lines. The
 * shebang passes --no-warnings, so that Node does not print them as multi-line text among the JSON lines
 * log pipelines parse; this listener brings them back: as JSON while `serve` logs through pino, as one
 * stderr line otherwise. Without --no-warnings (e.g. `node dist/main.js`) Node prints them itself.
 */
export function handleProcessWarnings(proc: WarningSource = process): void {
  if (!proc.execArgv.includes('--no-warnings')) return;
  proc.on('warning', (w: Error) => {
    if (warningSink !== undefined) warningSink(w);
    else process.stderr.write(`imdsgate: ${w.name}: ${oneLine(w.message)}\n`);
  });
}

/** Sends process warnings to `logger` until the returned function is called. */
export function logProcessWarnings(logger: Logger): () => void {
  const sink = (w: Error) =>
    logger.warn({ warning: w.name, code: (w as NodeJS.ErrnoException).code }, oneLine(w.message));
  warningSink = sink;
  return () => {
    if (warningSink === sink) warningSink = undefined;
  };
}
